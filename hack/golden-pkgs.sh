#!/bin/sh
# Lists the packages whose tests take -update (they use internal/golden or define the
# flag themselves), for `make golden`.
set -eu
{
	go list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... | awk '/internal\/golden/ {print $1}'
	grep -rl 'flag.Bool("update"' --include='*_test.go' . | xargs -n1 dirname | sed 's|^\.|github.com/sitectl/sitectl|'
} | sort -u
