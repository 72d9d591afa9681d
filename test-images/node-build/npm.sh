#!/bin/sh
exec node /usr/lib/node_modules/npm/bin/npm-cli.js "$@"
