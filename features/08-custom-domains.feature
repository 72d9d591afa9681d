Feature: Custom domains over HTTPS
  A customer points their own hostname at a service. The worker checks its DNS records,
  adds it to the service's route, and Caddy obtains its certificate on demand from the
  install's ACME CA, asking the API first. Here the CA is pebble and the DNS server
  pebble-challtestsrv, both given to install.sh as configuration (features/support/acme.ts).

  Background:
    Given I am signed in as the owner
    And this host is registered as a node
    And a service "shop" running "selfdevop-test/app:v1"
    And I remember the id of service "shop" as "shopId"

  Scenario: A verified custom domain becomes active and is served over HTTPS
    Given "selfdevop-test/app:v1" is deployed to "shop"
    When I send a POST request to "/api/domains" with:
      """
      {"serviceId": "{shopId}", "hostname": "shop.example.test"}
      """
    Then the response status is 201
    And the response body at "status" is "pending_dns"
    And the response body at "records.0.type" is "TXT"
    And the response body at "records.1.type" is "CNAME"
    And the response body at "records.1.value" matches "^shop-production-[a-z0-9]+\.localhost$"
    And I remember the response body at "id" as "domainId"
    When I publish the DNS records the response asks for
    And I send a POST request to "/api/domains/{domainId}/verify"
    Then the response status is 202
    And the domain "{domainId}" becomes "active" within 90 seconds
    And "https://shop.example.test/" answers "selfdevop-test app v1" over HTTPS with a certificate from the test CA

  Scenario: A hostname without verified records gets no certificate
    When I send a POST request to "/api/domains" with:
      """
      {"serviceId": "{shopId}", "hostname": "unverified.example.test"}
      """
    Then the response status is 201
    When I send a GET request to "/api/domains/ask?domain=unverified.example.test"
    Then the response status is 403
    And the response body at "error.code" is "domain_not_allowed"
    And a TLS handshake for "unverified.example.test" gets no certificate
    And the test CA received no order for "unverified.example.test"
