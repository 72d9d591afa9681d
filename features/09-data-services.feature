Feature: App data that survives losing its server
  A MariaDB for an app, backed up by the worker in the installed stack, proven by its
  restore drill, and restored after its container and volume are gone.

  Background:
    Given I am signed in as the owner
    And this host is registered as a node
    And a service "till" running "selfdevop-test/app:v1"

  Scenario: MariaDB is backed up, destroyed and restored with identical checksums
    Given a MariaDB data service "orders" linked to "till"
    When I write 2000 rows into "orders" and note its checksum
    And I back up "orders"
    Then the backup of "orders" completes and its restore drill passes
    When the container and the data volume of "orders" are destroyed
    And I restore that backup of "orders" into a new data service "orders-restored"
    Then "orders-restored" holds the same rows with the same checksum
