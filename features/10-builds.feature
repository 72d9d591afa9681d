Feature: From a git repository to running, and a push deploys
  A service built from a git repository by the installed stack's worker, on this host's
  Docker Engine, serving the commit it was built from; a signed push then deploys the next.

  Background:
    Given I am signed in as the owner
    And this host is registered as a node

  Scenario: a service built from git serves its commit, and a signed GitHub push deploys the next
    Given a git repository "storefront" whose app answers "first build"
    And a service "storefront" built from the "main" branch of "storefront"
    When I deploy the head of "storefront" to "storefront"
    Then the release ends "completed"
    And the release records the head of "storefront" and its build log
    And "storefront" answers "first build" through Caddy
    When a commit to "storefront" makes its app answer "pushed build"
    And a signed GitHub push of that commit reaches the push hook of "storefront"
    Then the push deploys that commit
    And "storefront" answers "pushed build" through Caddy
