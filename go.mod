module github.com/tether-run/tether

go 1.26.8

require (
	github.com/containerd/console v1.0.5
	github.com/opencontainers/runtime-spec v1.3.0
	github.com/sirupsen/logrus v1.10.2
	golang.org/x/sys v0.50.0
)
