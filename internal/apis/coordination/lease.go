// Package coordination holds kube-apiserver's validation for coordination.k8s.io/v1 Leases, written against
// the versioned types with kube v1.35's field paths, error types and messages. Leases have no defaults.
package coordination

import (
	"slices"
	"strings"

	coordinationv1 "k8s.io/api/coordination/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var validLeaseStrategies = []coordinationv1.CoordinatedLeaseStrategy{coordinationv1.OldestEmulationVersion}

// ValidateLease validates a Lease on create. Unlike most kinds, kube uses apimachinery's plain object
// metadata validation here (no extra finalizer-name rule).
func ValidateLease(l *coordinationv1.Lease) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMeta(&l.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	return append(allErrs, validateLeaseSpec(&l.Spec, field.NewPath("spec"))...)
}

// ValidateLeaseUpdate validates an update of a Lease; every spec field may change.
func ValidateLeaseUpdate(newL, oldL *coordinationv1.Lease) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&newL.ObjectMeta, &oldL.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, validateLeaseSpec(&newL.Spec, field.NewPath("spec"))...)
}

func validateLeaseSpec(spec *coordinationv1.LeaseSpec, fldPath *field.Path) field.ErrorList {
	allErrs := field.ErrorList{}
	if spec.LeaseDurationSeconds != nil && *spec.LeaseDurationSeconds <= 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("leaseDurationSeconds"), spec.LeaseDurationSeconds, "must be greater than 0"))
	}
	if spec.LeaseTransitions != nil && *spec.LeaseTransitions < 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("leaseTransitions"), spec.LeaseTransitions, "must be greater than or equal to 0"))
	}
	if spec.Strategy != nil {
		allErrs = append(allErrs, validateCoordinatedLeaseStrategy(*spec.Strategy, fldPath.Child("strategy"))...)
	}
	if spec.PreferredHolder != nil && *spec.PreferredHolder != "" && (spec.Strategy == nil || *spec.Strategy == "") {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("preferredHolder"), "may only be specified if `strategy` is defined"))
	}
	// renewTime and acquireTime are MicroTimes and need no further validation.
	return allErrs
}

// validateCoordinatedLeaseStrategy accepts kube-defined strategy names or any qualified "domain/name".
// kube appends "strategy" to a path that already ends in it (spec.strategy.strategy); kept for identical
// output.
func validateCoordinatedLeaseStrategy(s coordinationv1.CoordinatedLeaseStrategy, fldPath *field.Path) field.ErrorList {
	allErrs := field.ErrorList{}
	p := fldPath.Child("strategy")
	if !strings.Contains(string(s), "/") {
		if !slices.Contains(validLeaseStrategies, s) {
			allErrs = append(allErrs, field.NotSupported(p, s, validLeaseStrategies))
		}
		return allErrs
	}
	for _, msg := range validation.IsQualifiedName(string(s)) {
		allErrs = append(allErrs, field.Invalid(p, s, msg))
	}
	return allErrs
}
