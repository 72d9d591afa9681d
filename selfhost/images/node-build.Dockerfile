# The base of zero-config Node.js builds (BUILD_NODE_IMAGE): selfdevop/node:24 plus npm, yarn
# classic (`yarn`), yarn berry (`yarn-berry`) and pnpm, so a repository with package.json and
# any of their lockfiles builds on a node without a registry for images or packages (corepack
# would download the package managers on first use). Built by selfhost/build-images.sh from
# the npm already on the build machine and the npm registry's tarballs of the others
# (selfhost/images/package-managers.sh).
ARG NODE_BASE=selfdevop/node:24
FROM ${NODE_BASE}
COPY npm /usr/local/lib/node_modules/npm
COPY yarn /usr/local/lib/node_modules/yarn
COPY yarn-berry /usr/local/lib/node_modules/yarn-berry
COPY pnpm /usr/local/lib/node_modules/pnpm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && ln -s ../lib/node_modules/yarn/bin/yarn.js /usr/local/bin/yarn \
 && ln -s ../lib/node_modules/yarn-berry/bin/yarn.js /usr/local/bin/yarn-berry \
 && ln -s ../lib/node_modules/pnpm/bin/pnpm.cjs /usr/local/bin/pnpm \
 && npm --version && yarn --version && yarn-berry --version && pnpm --version
# Offline nodes: no telemetry, no update checks, and a `packageManager` field is no reason
# for yarn classic to refuse (corepack is not there to honour it).
ENV YARN_ENABLE_TELEMETRY=0 SKIP_YARN_COREPACK_CHECK=1 COREPACK_ENABLE_STRICT=0 \
    npm_config_update_notifier=false YARN_IGNORE_NODE=1
WORKDIR /app
CMD ["node"]
