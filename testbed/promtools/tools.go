//go:build tools

// Package tools pins the Prometheus commands that the test bed builds (see testbed/README.md).
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
