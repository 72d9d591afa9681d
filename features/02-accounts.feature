Feature: Local accounts and API keys
  The first user to sign up owns a new org; after that, sign-up is closed (first-user mode).

  Scenario: The first user signs up and creates an API key for CI
    When I send a POST request to "/api/auth/local/signup" with:
      """
      {"email": "owner-{run}@example.com", "password": "correct horse battery staple"}
      """
    Then the response status is 201
    And the signed-up user is the owner of the install
    And I remember the response body at "token" as "token"
    And I remember the response body at "org.id" as "orgId"
    When I send a POST request to "/api/auth/local/signup" with:
      """
      {"email": "intruder-{run}@example.com", "password": "correct horse battery staple"}
      """
    Then the response status is 403
    When I authenticate with "{token}"
    And I send a POST request to "/api/orgs/{orgId}/api-keys" with:
      """
      {"name": "ci", "role": "deployer"}
      """
    Then the response status is 201
    And I remember the response body at "key" as "apiKey"
    When I authenticate with "{apiKey}"
    And I send a POST request to "/api/projects" with:
      """
      {"name": "created-with-a-key"}
      """
    Then the response status is 201
    And the response body at "environments.0.name" is "production"
