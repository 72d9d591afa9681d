#!/bin/sh
exec node /usr/lib/node_modules/yarn-berry/bin/yarn.js "$@"
