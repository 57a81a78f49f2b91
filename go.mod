module github.com/tether-run/tether

go 1.26.8

require (
	github.com/containerd/console v1.0.5 // indirect
	github.com/opencontainers/runtime-spec v1.3.0 // indirect
	github.com/sirupsen/logrus v1.10.2 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
