Feature: Nothing is lost by restarts, re-installs or running offline

  Background:
    Given I am signed in as the owner
    And this host is registered as a node
    And a service "keeper" running "selfdevop-test/app:v1"
    And "selfdevop-test/app:v1" is deployed to "keeper"

  Scenario: docker compose down and up keeps every record and route
    Given I note the users, services and releases
    When I run "docker compose down" in the install directory
    And I run "docker compose up -d" in the install directory
    Then every service of the stack is healthy
    And the users, services and releases are unchanged
    And my session token still works
    And "keeper" answers "v1" through Caddy

  Scenario: Re-running install.sh keeps the secrets
    Given I note the install's secrets
    And I note the users, services and releases
    When I run install.sh again
    Then the install's secrets are unchanged
    And every service of the stack is healthy
    And the users, services and releases are unchanged
    And my session token still works

  Scenario: install.sh refuses to generate new secrets next to an existing database
    Given the install's .env has been lost
    When I run install.sh again, expecting it to fail
    Then install.sh explains that .env must be restored from a backup
    And no container of the stack was touched

  # What this proves: every image was built on this machine (no registry is reachable
  # here), every service refuses to pull, and the whole stack is recreated and serves.
  Scenario: The stack runs with no registry
    Then every service of the stack has pull policy "never"
    And every image of the stack was built on this machine
    When the whole stack is recreated with pulling disabled
    Then every service of the stack is healthy
    And "keeper" answers "v1" through Caddy
