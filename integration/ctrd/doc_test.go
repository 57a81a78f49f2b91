// Package ctrd holds the end-to-end tests of the containerd front end
// (containerd-shim-tether-v1): the runtime v2 protocol by hand, ctr
// against a private containerd, and Kubernetes' CRI with crictl. They need
// root and containerd; as root under make test they must run
// (TETHER_REQUIRE_ROOT_TESTS). A package of their own, so they run beside
// the core integration tests under go test -p 2.
package ctrd
