Feature: Air-gapped install from an image bundle
  A host with no registry gets its images from a file made on a connected machine
  (build-images.sh --save, or docker save) and installs with install.sh --images.

  Scenario: An image bundle installs a fresh host with pulling disabled
    When I save the images into a bundle with build-images.sh --save
    Then the bundle holds the app, PostgreSQL, Caddy, Prometheus, Alertmanager and Node.js build images
    When I install selfdevop afresh from the bundle
    Then the fresh install is healthy and answers GET /health
