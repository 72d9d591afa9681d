#!/bin/sh
exec node /usr/lib/node_modules/yarn/bin/yarn.js "$@"
