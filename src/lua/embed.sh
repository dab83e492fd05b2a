#!/bin/sh
# embed.sh DEF LUADIR: the C header with the limiter's Lua scripts, made
# from the algorithm list DEF (src/algorithms.def) and the files of LUADIR
# (src/lua), on stdout. Each script is prelude.lua, algorithm files, then
# main.lua, as a C string literal:
#   limiter_lua          every algorithm and layout (rules that mix them,
#                        and what --check loads)
#   limiter_lua_by_id[]  indexed by script id (algorithm number for
#                        RATELIMIT_STORE=keys, number + row count for
#                        buckets): the script holding that one alone, NULL
#                        when the algorithm has no such layout
# In every file, a line starting "ALGO[ID]" gets ALGO[<id>], the id of the script whose
# list that file ends; a file that ends no list must not register one.
set -eu
def=$1
dir=$2

# One "keys|buckets" line per row of DEF, in order.
rows=$(sed -n 's/^RL_ALGO([A-Z0-9_]*, *"[^"]*", *"\([^"]*\)", *"\([^"]*\)", *[A-Z]*).*/\1|\2/p' "$def")
nrows=$(printf '%s\n' "$rows" | grep -c .)
[ "$nrows" -gt 0 ] || { echo "embed.sh: no RL_ALGO row in $def" >&2; exit 1; }

# The id of the script whose file list ends with file $1, or nothing.
file_id() {
    i=0
    while IFS='|' read -r keys buckets; do
        [ "${keys##* }" = "$1" ] && { echo $i; return; }
        [ -n "$buckets" ] && [ "${buckets##* }" = "$1" ] && { echo $((i + nrows)); return; }
        i=$((i + 1))
    done <<ROWS
$rows
ROWS
}

# embed NAME FILE...: "static const char NAME[] = ...;".
embed() {
    echo "static const char $1[] ="
    shift
    for f in prelude "$@" main; do
        id=$(file_id "$f")
        if [ -z "$id" ] && grep -q '^ALGO\[ID\]' "$dir/$f.lua"; then
            echo "embed.sh: $f.lua registers ALGO[ID] but ends no list of $def" >&2
            exit 1
        fi
        sed -e "s/^ALGO\\[ID\\]/ALGO[$id]/" -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' \
            -e 's/$/\\n"/' "$dir/$f.lua"
    done
    echo ';'
}

echo "/* generated from $(basename "$def") and the lua files by embed.sh: do not edit */"
# The full script: every file once, in the order the rows name them.
all=
for f in $(printf '%s\n' "$rows" | cut -d'|' -f1) $(printf '%s\n' "$rows" | cut -d'|' -f2); do
    case " $all " in *" $f "*) ;; *) all="$all $f" ;; esac
done
# shellcheck disable=SC2086 # word splitting is the point
embed limiter_lua $all
i=0
table=
while IFS='|' read -r keys buckets; do
    # shellcheck disable=SC2086
    embed "limiter_lua_$i" $keys
    table="$table limiter_lua_$i"
    i=$((i + 1))
done <<ROWS
$rows
ROWS
i=0
while IFS='|' read -r keys buckets; do
    if [ -n "$buckets" ]; then
        # shellcheck disable=SC2086
        embed "limiter_lua_$((i + nrows))" $buckets
        table="$table limiter_lua_$((i + nrows))"
    else
        table="$table NULL"
    fi
    i=$((i + 1))
done <<ROWS
$rows
ROWS
echo "static const char *const limiter_lua_by_id[] = {"
for t in $table; do
    echo "    $t,"
done
echo '};'
