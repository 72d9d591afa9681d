# The base of zero-config Node.js builds (BUILD_NODE_IMAGE): selfdevop/node:24 plus npm, so a
# repository with package.json and a lockfile builds on a node without a registry for images.
# Built by selfhost/build-images.sh from the npm already on the build machine.
ARG NODE_BASE=selfdevop/node:24
FROM ${NODE_BASE}
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && npm --version
WORKDIR /app
CMD ["node"]
