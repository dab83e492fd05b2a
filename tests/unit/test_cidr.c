#include "testhelp.h"
int main(void)
{
    return test_report();
}
