#!/bin/sh
# A migration gone wrong: 100,000 short lines, then one 30 MB line, then a last line; exits 0.
# FLOOD_LINES and FLOOD_LONG_BYTES change the amounts.
seq 1 "${FLOOD_LINES:-100000}" | sed 's/^/flood line /'
head -c "${FLOOD_LONG_BYTES:-31457280}" /dev/zero | tr '\0' x
echo
echo "flood: done"
