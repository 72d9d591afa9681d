Feature: Backups that restore

  Background:
    Given I am signed in as the owner
    And this host is registered as a node
    And a service "keeper" running "selfdevop-test/app:v1"

  Scenario: A backup passes its restore drill and restores into a fresh install
    Given I note the users, services and releases
    When I take a backup with backup.sh
    Then restore.sh --verify passes for that backup
    And restore.sh --verify refuses a copy of it with a damaged dump
    When I restore that backup into a fresh install
    Then the fresh install has the same users, services and releases
    And the owner can sign in to the fresh install and list the projects
