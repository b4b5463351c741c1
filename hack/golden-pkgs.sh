#!/bin/sh
# Lists the packages whose tests take -update, for `make golden`: every package whose
# test binary links internal/golden (directly, or through a helper such as stacktest),
# since internal/golden defines the one -update flag.
set -eu
go list -test -f '{{if .ForTest}}{{.ForTest}} {{join .Deps " "}}{{end}}' ./... |
	awk '$1 == "github.com/sitectl/sitectl/internal/golden" || / github\.com\/sitectl\/sitectl\/internal\/golden( |$)/ {print $1}' | sort -u
