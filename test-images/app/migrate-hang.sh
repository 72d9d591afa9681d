#!/bin/sh
# A migration that never finishes, for migrate-timeout tests.
echo "migrate $APP_VERSION: starting, this one never finishes"
exec sleep 3600
