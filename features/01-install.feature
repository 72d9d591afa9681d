Feature: One-command install
  A self-hoster runs install.sh on a host with Docker and gets a healthy stack: the
  control API and the worker, PostgreSQL on a named volume and Caddy in front.

  Scenario: install.sh brings every service up healthy
    Given selfdevop has been installed with install.sh
    Then every service of the stack is healthy
    And install.sh finished within 60 seconds
    And install.sh printed the dashboard URL and the signup command
    And the install directory keeps its secrets private
    And only the worker has the Docker socket
    And the database lives in the named volume "pgdata"
    And the API and the worker reach the database only as logins that are no superuser
    When I send a GET request to "/health"
    Then the response status is 200
    And the response body at "status" is "ok"
