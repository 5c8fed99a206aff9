// Package openapi holds the generated OpenAPI definitions of the types svcnet serves.
package openapi
