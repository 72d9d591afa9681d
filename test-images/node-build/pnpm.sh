#!/bin/sh
exec node /usr/lib/node_modules/pnpm/bin/pnpm.cjs "$@"
