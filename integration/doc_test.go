// Package integration holds Tether's end-to-end tests: real containers with
// the real runc and crun on busybox bundles, driven through the CLI and the
// runtime package. They need root; as root under make test they must run
// (TETHER_REQUIRE_ROOT_TESTS), elsewhere they skip with the reason.
//
// Files by area: core_test.go (a container's life, bad input), recovery_test.go
// (crash recovery), io_test.go (logs, attach, stdin, terminals), exec_test.go
// (exec and signals), hardening_test.go (hostile input and faults).
package integration
