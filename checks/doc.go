// Package checks holds only tests: independent checks of what sitectl generates, by
// tools no one here wrote. Each check also shows it can fail on a broken input.
//
//   - swanctl_test.go: every gateway's rendered swanctl.conf and strongswan.conf loaded
//     by a real charon-systemd with `swanctl --load-all` (root; private namespaces).
//   - compose_test.go: every rendered compose file loaded by compose-go v2, the
//     Compose specification's reference loader (docker/cli's loader is checked by
//     each stack's own tests).
//   - gitlabci_test.go: every generated pipeline and the repository's .gitlab-ci.yml
//     through gitlab-ci-local --list and --validate-dependency-chain.
//
// promtool's lint of the Prometheus rules lives with them in stacks/monitoring.
package checks
