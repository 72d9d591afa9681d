Feature: Upgrades never lose data

  Background:
    Given I am signed in as the owner
    And this host is registered as a node
    And a service "keeper" running "selfdevop-test/app:v1"

  Scenario: A failing migration leaves the running version serving
    Given I note the users, services and releases
    When I upgrade to a rebuilt image whose migration fails
    Then the upgrade fails, saying "FAILED"
    And the API reports version "{version}"
    And every service of the stack is healthy
    And the users, services and releases are unchanged

  Scenario: An upgrade whose new version never becomes healthy returns to the previous one
    Given I note the users, services and releases
    When I upgrade to a rebuilt image that never becomes healthy
    Then the upgrade fails, saying "returning to selfdevop/selfdevop:{version}"
    And the api and the worker run "selfdevop/selfdevop:{version}"
    And every service of the stack is healthy
    And the users, services and releases are unchanged

  Scenario: Upgrading to a rebuilt image keeps users, services and releases
    Given I note the users, services and releases
    When I upgrade to a rebuilt image tagged "{version}-next"
    Then the api and the worker run "selfdevop/selfdevop:{version}-next"
    And the API reports version "{version}-next"
    And every service of the stack is healthy
    And the users, services and releases are unchanged
    And my session token still works
    And "keeper" answers "v1" through Caddy
