#!/usr/bin/env bats
# placeholder
