Feature: Deploying through the API
  The worker starts app containers on this host's Docker Engine and points Caddy at them.

  Background:
    Given I am signed in as the owner
    And this host is registered as a node

  Scenario: A service is deployed and reached through Caddy
    Given a service "web" running "selfdevop-test/app:v1"
    When I deploy "selfdevop-test/app:v1" to "web"
    Then the release ends "completed"
    And "web" answers "v1" through Caddy
    When I deploy "selfdevop-test/app:v2" to "web"
    Then the release ends "completed"
    And "web" answers "v2" through Caddy

  Scenario: A failing deploy is rolled back automatically
    Given a service "fragile" running "selfdevop-test/app:v1"
    And "selfdevop-test/app:v1" is deployed to "fragile"
    When I deploy "selfdevop-test/app:unhealthy" to "fragile"
    Then the release ends "failed"
    And the release error mentions "health check"
    And "fragile" answers "v1" through Caddy
