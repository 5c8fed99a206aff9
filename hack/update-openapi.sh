#!/usr/bin/env bash
# Regenerates internal/openapi/zz_generated.openapi.go: the OpenAPI definitions of every type svcnet
# serves, which kubectl needs for `apply` field validation, `explain`, and server-side apply.
set -euo pipefail
cd "$(dirname "$0")/.."
go run k8s.io/kube-openapi/cmd/openapi-gen \
  --output-dir internal/openapi --output-pkg github.com/svcnet/svcnet/internal/openapi \
  --output-file zz_generated.openapi.go --go-header-file hack/boilerplate.go.txt \
  --report-filename /dev/null \
  k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/runtime k8s.io/apimachinery/pkg/version \
  k8s.io/apimachinery/pkg/util/intstr k8s.io/apimachinery/pkg/api/resource \
  k8s.io/api/core/v1 k8s.io/api/apps/v1 k8s.io/api/discovery/v1 k8s.io/api/coordination/v1 k8s.io/api/autoscaling/v1
