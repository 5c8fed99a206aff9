package workload

import (
	corevalidation "github.com/svcnet/svcnet/internal/apis/core/validation"

	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// ---------------------------------------------------------------------------------------------------------
// Defaulting
// ---------------------------------------------------------------------------------------------------------

// DefaultDeployment applies apps/v1 SetDefaults_Deployment (1 replica, RollingUpdate 25%/25%, 10 revisions,
// 600s progress deadline) and the pod template defaults.
func DefaultDeployment(d *appsv1.Deployment) {
	if d == nil {
		return
	}
	if d.Spec.Replicas == nil {
		d.Spec.Replicas = ptr.To[int32](1)
	}
	st := &d.Spec.Strategy
	if st.Type == "" {
		st.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if st.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if st.RollingUpdate == nil {
			st.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		if st.RollingUpdate.MaxUnavailable == nil {
			st.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromString("25%"))
		}
		if st.RollingUpdate.MaxSurge == nil {
			st.RollingUpdate.MaxSurge = ptr.To(intstr.FromString("25%"))
		}
	}
	if d.Spec.RevisionHistoryLimit == nil {
		d.Spec.RevisionHistoryLimit = ptr.To[int32](10)
	}
	if d.Spec.ProgressDeadlineSeconds == nil {
		d.Spec.ProgressDeadlineSeconds = ptr.To[int32](600)
	}
	DefaultPodTemplateSpec(&d.Spec.Template)
}

// DefaultReplicaSet applies apps/v1 SetDefaults_ReplicaSet (1 replica) and the pod template defaults.
func DefaultReplicaSet(rs *appsv1.ReplicaSet) {
	if rs == nil {
		return
	}
	if rs.Spec.Replicas == nil {
		rs.Spec.Replicas = ptr.To[int32](1)
	}
	DefaultPodTemplateSpec(&rs.Spec.Template)
}

// DefaultStatefulSet applies apps/v1 SetDefaults_StatefulSet at 1.35 gate defaults (OrderedReady,
// RollingUpdate with partition 0 and maxUnavailable 1, Retain/Retain PVC retention, 1 replica,
// 10 revisions), the pod template defaults and the PVC defaults of every volume claim template.
func DefaultStatefulSet(s *appsv1.StatefulSet) {
	if s == nil {
		return
	}
	spec := &s.Spec
	if spec.PodManagementPolicy == "" {
		spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	if spec.UpdateStrategy.Type == "" {
		spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
		if spec.UpdateStrategy.RollingUpdate == nil {
			spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
	}
	if spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType && spec.UpdateStrategy.RollingUpdate != nil {
		ru := spec.UpdateStrategy.RollingUpdate
		if ru.Partition == nil {
			ru.Partition = ptr.To[int32](0)
		}
		// MaxUnavailableStatefulSet is beta and on by default in 1.35.
		if ru.MaxUnavailable == nil {
			ru.MaxUnavailable = ptr.To(intstr.FromInt32(1))
		}
	}
	if spec.PersistentVolumeClaimRetentionPolicy == nil {
		spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
	}
	if spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted == "" {
		spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if spec.PersistentVolumeClaimRetentionPolicy.WhenScaled == "" {
		spec.PersistentVolumeClaimRetentionPolicy.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if spec.Replicas == nil {
		spec.Replicas = ptr.To[int32](1)
	}
	if spec.RevisionHistoryLimit == nil {
		spec.RevisionHistoryLimit = ptr.To[int32](10)
	}
	DefaultPodTemplateSpec(&spec.Template)
	for i := range spec.VolumeClaimTemplates {
		pvc := &spec.VolumeClaimTemplates[i]
		if pvc.Status.Phase == "" {
			pvc.Status.Phase = corev1.ClaimPending
		}
		defaultPVCSpec(&pvc.Spec)
		roundResourceList(pvc.Status.Capacity)
		roundResourceList(pvc.Status.AllocatedResources)
	}
}

// ---------------------------------------------------------------------------------------------------------
// Deployment validation
// ---------------------------------------------------------------------------------------------------------

// ValidateDeployment validates a Deployment on create.
func ValidateDeployment(d *appsv1.Deployment) field.ErrorList {
	allErrs := corevalidation.ValidateObjectMeta(&d.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	return append(allErrs, validateDeploymentSpec(&d.Spec, field.NewPath("spec"), podOpts{})...)
}

// ValidateDeploymentUpdate validates an update of a Deployment: the new spec must be valid and the
// selector may not change (in apps/v1 it is immutable).
func ValidateDeploymentUpdate(newD, oldD *appsv1.Deployment) field.ErrorList {
	allErrs := corevalidation.ValidateObjectMetaUpdate(&newD.ObjectMeta, &oldD.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, validateDeploymentSpec(&newD.Spec, field.NewPath("spec"), podOpts{})...)
	return append(allErrs, apimachineryvalidation.ValidateImmutableField(newD.Spec.Selector, oldD.Spec.Selector, field.NewPath("spec").Child("selector"))...)
}

// ValidateDeploymentStatusUpdate validates an update through the status subresource.
func ValidateDeploymentStatusUpdate(newD, oldD *appsv1.Deployment) field.ErrorList {
	allErrs := corevalidation.ValidateObjectMetaUpdate(&newD.ObjectMeta, &oldD.ObjectMeta, field.NewPath("metadata"))
	p := field.NewPath("status")
	st := &newD.Status
	allErrs = append(allErrs, nonNegative(st.ObservedGeneration, p.Child("observedGeneration"))...)
	allErrs = append(allErrs, nonNegative(int64(st.Replicas), p.Child("replicas"))...)
	allErrs = append(allErrs, nonNegative(int64(st.UpdatedReplicas), p.Child("updatedReplicas"))...)
	allErrs = append(allErrs, nonNegative(int64(st.ReadyReplicas), p.Child("readyReplicas"))...)
	allErrs = append(allErrs, nonNegative(int64(st.AvailableReplicas), p.Child("availableReplicas"))...)
	allErrs = append(allErrs, nonNegative(int64(st.UnavailableReplicas), p.Child("unavailableReplicas"))...)
	if st.TerminatingReplicas != nil {
		allErrs = append(allErrs, nonNegative(int64(*st.TerminatingReplicas), p.Child("terminatingReplicas"))...)
	}
	if st.CollisionCount != nil {
		allErrs = append(allErrs, nonNegative(int64(*st.CollisionCount), p.Child("collisionCount"))...)
	}
	const msg = "cannot be greater than status.replicas"
	if st.UpdatedReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(p.Child("updatedReplicas"), st.UpdatedReplicas, msg))
	}
	if st.ReadyReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(p.Child("readyReplicas"), st.ReadyReplicas, msg))
	}
	if st.AvailableReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(p.Child("availableReplicas"), st.AvailableReplicas, msg))
	}
	if st.AvailableReplicas > st.ReadyReplicas {
		allErrs = append(allErrs, field.Invalid(p.Child("availableReplicas"), st.AvailableReplicas, "cannot be greater than readyReplicas"))
	}
	return append(allErrs, validateCollisionCount(st.CollisionCount, oldD.Status.CollisionCount)...)
}

func validateDeploymentSpec(spec *appsv1.DeploymentSpec, fldPath *field.Path, opts podOpts) field.ErrorList {
	allErrs := field.ErrorList{}
	replicas := ptr.Deref(spec.Replicas, 0)
	allErrs = append(allErrs, nonNegative(int64(replicas), fldPath.Child("replicas"))...)
	allErrs = append(allErrs, validateWorkloadSelector(spec.Selector, &spec.Template, replicas, fldPath, "deployment", "ReplicaSet", opts)...)
	allErrs = append(allErrs, validateDeploymentStrategy(&spec.Strategy, fldPath.Child("strategy"))...)
	allErrs = append(allErrs, nonNegative(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	if spec.RevisionHistoryLimit != nil {
		// zero is a valid revisionHistoryLimit
		allErrs = append(allErrs, nonNegative(int64(*spec.RevisionHistoryLimit), fldPath.Child("revisionHistoryLimit"))...)
	}
	if spec.ProgressDeadlineSeconds != nil {
		allErrs = append(allErrs, nonNegative(int64(*spec.ProgressDeadlineSeconds), fldPath.Child("progressDeadlineSeconds"))...)
		if *spec.ProgressDeadlineSeconds <= spec.MinReadySeconds {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("progressDeadlineSeconds"), spec.ProgressDeadlineSeconds, "must be greater than minReadySeconds"))
		}
	}
	return allErrs
}

func validateDeploymentStrategy(st *appsv1.DeploymentStrategy, fldPath *field.Path) field.ErrorList {
	allErrs := field.ErrorList{}
	switch st.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if st.RollingUpdate != nil {
			allErrs = append(allErrs, field.Forbidden(fldPath.Child("rollingUpdate"), "may not be specified when strategy `type` is '"+string(appsv1.RecreateDeploymentStrategyType)+"'"))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		if st.RollingUpdate == nil {
			allErrs = append(allErrs, field.Required(fldPath.Child("rollingUpdate"), "this should be defaulted and never be nil"))
		} else {
			allErrs = append(allErrs, validateRollingUpdateDeployment(st.RollingUpdate, fldPath.Child("rollingUpdate"))...)
		}
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath, st, []string{string(appsv1.RecreateDeploymentStrategyType), string(appsv1.RollingUpdateDeploymentStrategyType)}))
	}
	return allErrs
}

func validateRollingUpdateDeployment(ru *appsv1.RollingUpdateDeployment, fldPath *field.Path) field.ErrorList {
	// Conversion to the internal type turns an unset value into integer 0.
	maxUnavailable := ptr.Deref(ru.MaxUnavailable, intstr.IntOrString{})
	maxSurge := ptr.Deref(ru.MaxSurge, intstr.IntOrString{})
	allErrs := field.ErrorList{}
	allErrs = append(allErrs, validatePositiveIntOrPercent(maxUnavailable, fldPath.Child("maxUnavailable"))...)
	allErrs = append(allErrs, validatePositiveIntOrPercent(maxSurge, fldPath.Child("maxSurge"))...)
	if intOrPercentValue(maxUnavailable) == 0 && intOrPercentValue(maxSurge) == 0 {
		// Both zero would let a rollout make no progress.
		allErrs = append(allErrs, field.Invalid(fldPath.Child("maxUnavailable"), maxUnavailable, "may not be 0 when `maxSurge` is 0"))
	}
	return append(allErrs, isNotMoreThan100Percent(maxUnavailable, fldPath.Child("maxUnavailable"))...)
}

// ---------------------------------------------------------------------------------------------------------
// ReplicaSet validation
// ---------------------------------------------------------------------------------------------------------

// ValidateReplicaSet validates a ReplicaSet on create.
func ValidateReplicaSet(rs *appsv1.ReplicaSet) field.ErrorList {
	allErrs := corevalidation.ValidateObjectMeta(&rs.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	return append(allErrs, validateReplicaSetSpec(&rs.Spec, field.NewPath("spec"), podOpts{})...)
}

// ValidateReplicaSetUpdate validates an update of a ReplicaSet; the selector is immutable.
func ValidateReplicaSetUpdate(newRS, oldRS *appsv1.ReplicaSet) field.ErrorList {
	allErrs := corevalidation.ValidateObjectMetaUpdate(&newRS.ObjectMeta, &oldRS.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, validateReplicaSetSpec(&newRS.Spec, field.NewPath("spec"), podOpts{})...)
	return append(allErrs, apimachineryvalidation.ValidateImmutableField(newRS.Spec.Selector, oldRS.Spec.Selector, field.NewPath("spec").Child("selector"))...)
}

// ValidateReplicaSetStatusUpdate validates an update through the status subresource.
func ValidateReplicaSetStatusUpdate(newRS, oldRS *appsv1.ReplicaSet) field.ErrorList {
	allErrs := corevalidation.ValidateObjectMetaUpdate(&newRS.ObjectMeta, &oldRS.ObjectMeta, field.NewPath("metadata"))
	p := field.NewPath("status")
	st := &newRS.Status
	allErrs = append(allErrs, nonNegative(int64(st.Replicas), p.Child("replicas"))...)
	allErrs = append(allErrs, nonNegative(int64(st.FullyLabeledReplicas), p.Child("fullyLabeledReplicas"))...)
	allErrs = append(allErrs, nonNegative(int64(st.ReadyReplicas), p.Child("readyReplicas"))...)
	allErrs = append(allErrs, nonNegative(int64(st.AvailableReplicas), p.Child("availableReplicas"))...)
	allErrs = append(allErrs, nonNegative(st.ObservedGeneration, p.Child("observedGeneration"))...)
	if st.TerminatingReplicas != nil {
		allErrs = append(allErrs, nonNegative(int64(*st.TerminatingReplicas), p.Child("terminatingReplicas"))...)
	}
	const msg = "cannot be greater than status.replicas"
	if st.FullyLabeledReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(p.Child("fullyLabeledReplicas"), st.FullyLabeledReplicas, msg))
	}
	if st.ReadyReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(p.Child("readyReplicas"), st.ReadyReplicas, msg))
	}
	if st.AvailableReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(p.Child("availableReplicas"), st.AvailableReplicas, msg))
	}
	if st.AvailableReplicas > st.ReadyReplicas {
		allErrs = append(allErrs, field.Invalid(p.Child("availableReplicas"), st.AvailableReplicas, "cannot be greater than readyReplicas"))
	}
	return allErrs
}

func validateReplicaSetSpec(spec *appsv1.ReplicaSetSpec, fldPath *field.Path, opts podOpts) field.ErrorList {
	allErrs := field.ErrorList{}
	replicas := ptr.Deref(spec.Replicas, 0)
	allErrs = append(allErrs, nonNegative(int64(replicas), fldPath.Child("replicas"))...)
	allErrs = append(allErrs, nonNegative(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	// kube says "deployment" in the ReplicaSet message too.
	return append(allErrs, validateWorkloadSelector(spec.Selector, &spec.Template, replicas, fldPath, "deployment", "ReplicaSet", opts)...)
}

// validateWorkloadSelector checks a Deployment/ReplicaSet selector and, through it, the pod template.
func validateWorkloadSelector(sel *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec, replicas int32, fldPath *field.Path, emptyKind, kind string, opts podOpts) field.ErrorList {
	allErrs := field.ErrorList{}
	if sel == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("selector"), ""))
	} else {
		// Selectors are validated strictly: they always had to pass LabelSelectorAsSelector below.
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{AllowInvalidLabelValueInSelector: false}, fldPath.Child("selector"))...)
		if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("selector"), sel, "empty selector is invalid for "+emptyKind))
		}
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return append(allErrs, field.Invalid(fldPath.Child("selector"), sel, "invalid label selector"))
	}
	return append(allErrs, validatePodTemplateSpecForReplicaSet(tmpl, selector, fldPath.Child("template"), kind, opts)...)
}

func validatePodTemplateSpecForReplicaSet(tmpl *corev1.PodTemplateSpec, selector labels.Selector, fldPath *field.Path, kind string, opts podOpts) field.ErrorList {
	allErrs := field.ErrorList{}
	if !selector.Empty() && !selector.Matches(labels.Set(tmpl.Labels)) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("metadata", "labels"), tmpl.Labels, "`selector` does not match template `labels`"))
	}
	allErrs = append(allErrs, validatePodTemplateSpec(tmpl, fldPath, opts)...)
	// The restart policy was already first-order validated by validatePodTemplateSpec.
	if tmpl.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("spec", "restartPolicy"), tmpl.Spec.RestartPolicy, []string{string(corev1.RestartPolicyAlways)}))
	}
	if tmpl.Spec.ActiveDeadlineSeconds != nil {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("spec", "activeDeadlineSeconds"), fmt.Sprintf("activeDeadlineSeconds in %s is not Supported", kind)))
	}
	return allErrs
}

// ---------------------------------------------------------------------------------------------------------
// StatefulSet validation
// ---------------------------------------------------------------------------------------------------------

// statefulSetOpts mirrors kube's StatefulSetValidationOptions.
type statefulSetOpts struct {
	allowInvalidServiceName          bool
	skipValidatePodTemplateSpec      bool
	skipValidateVolumeClaimTemplates bool
}

// ValidateStatefulSet validates a StatefulSet on create. The name must be a DNS label (not subdomain)
// because each pod's hostname is derived from it.
func ValidateStatefulSet(s *appsv1.StatefulSet) field.ErrorList {
	allErrs := corevalidation.ValidateObjectMeta(&s.ObjectMeta, true, apimachineryvalidation.NameIsDNSLabel, field.NewPath("metadata"))
	return append(allErrs, validateStatefulSetSpec(&s.Spec, field.NewPath("spec"), podOpts{}, statefulSetOpts{})...)
}

// ValidateStatefulSetUpdate validates an update of a StatefulSet. Only replicas, ordinals, template,
// updateStrategy, revisionHistoryLimit, persistentVolumeClaimRetentionPolicy and minReadySeconds may change.
// The name is not revalidated, so objects created under the older subdomain rule can still be updated.
func ValidateStatefulSetUpdate(newS, oldS *appsv1.StatefulSet) field.ErrorList {
	allErrs := corevalidation.ValidateObjectMetaUpdate(&newS.ObjectMeta, &oldS.ObjectMeta, field.NewPath("metadata"))
	setOpts := statefulSetOpts{
		allowInvalidServiceName:          true, // serviceName is immutable; tolerate old invalid values
		skipValidateVolumeClaimTemplates: true, // likewise immutable
	}
	opts := podOpts{}
	// A stored object that would fail today's template rules must stay updatable.
	if len(validateStatefulSetSpec(&oldS.Spec, nil, opts, setOpts)) > 0 {
		setOpts.skipValidatePodTemplateSpec = true
	}
	allErrs = append(allErrs, validateStatefulSetSpec(&newS.Spec, field.NewPath("spec"), opts, setOpts)...)

	clone := newS.Spec.DeepCopy()
	clone.Replicas = oldS.Spec.Replicas
	clone.Template = oldS.Spec.Template
	clone.UpdateStrategy = oldS.Spec.UpdateStrategy
	clone.MinReadySeconds = oldS.Spec.MinReadySeconds
	clone.Ordinals = oldS.Spec.Ordinals
	clone.RevisionHistoryLimit = oldS.Spec.RevisionHistoryLimit
	clone.PersistentVolumeClaimRetentionPolicy = oldS.Spec.PersistentVolumeClaimRetentionPolicy
	if !apiequality.Semantic.DeepEqual(*clone, oldS.Spec) {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec"), "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
	}
	return allErrs
}

// ValidateStatefulSetStatusUpdate validates an update through the status subresource.
func ValidateStatefulSetStatusUpdate(newS, oldS *appsv1.StatefulSet) field.ErrorList {
	p := field.NewPath("status")
	st := &newS.Status
	allErrs := field.ErrorList{}
	allErrs = append(allErrs, nonNegative(int64(st.Replicas), p.Child("replicas"))...)
	allErrs = append(allErrs, nonNegative(int64(st.ReadyReplicas), p.Child("readyReplicas"))...)
	allErrs = append(allErrs, nonNegative(int64(st.CurrentReplicas), p.Child("currentReplicas"))...)
	allErrs = append(allErrs, nonNegative(int64(st.UpdatedReplicas), p.Child("updatedReplicas"))...)
	allErrs = append(allErrs, nonNegative(int64(st.AvailableReplicas), p.Child("availableReplicas"))...)
	// The v1 field is a plain int64 where the internal one is a pointer; 0 is always valid.
	allErrs = append(allErrs, nonNegative(st.ObservedGeneration, p.Child("observedGeneration"))...)
	if st.CollisionCount != nil {
		allErrs = append(allErrs, nonNegative(int64(*st.CollisionCount), p.Child("collisionCount"))...)
	}
	const msg = "cannot be greater than status.replicas"
	if st.ReadyReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(p.Child("readyReplicas"), st.ReadyReplicas, msg))
	}
	if st.CurrentReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(p.Child("currentReplicas"), st.CurrentReplicas, msg))
	}
	if st.UpdatedReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(p.Child("updatedReplicas"), st.UpdatedReplicas, msg))
	}
	if st.AvailableReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(p.Child("availableReplicas"), st.AvailableReplicas, msg))
	}
	if st.AvailableReplicas > st.ReadyReplicas {
		allErrs = append(allErrs, field.Invalid(p.Child("availableReplicas"), st.AvailableReplicas, "cannot be greater than status.readyReplicas"))
	}
	allErrs = append(allErrs, corevalidation.ValidateObjectMetaUpdate(&newS.ObjectMeta, &oldS.ObjectMeta, field.NewPath("metadata"))...)
	return append(allErrs, validateCollisionCount(st.CollisionCount, oldS.Status.CollisionCount)...)
}

func validateStatefulSetSpec(spec *appsv1.StatefulSetSpec, fldPath *field.Path, opts podOpts, setOpts statefulSetOpts) field.ErrorList {
	allErrs := field.ErrorList{}
	switch spec.PodManagementPolicy {
	case "":
		allErrs = append(allErrs, field.Required(fldPath.Child("podManagementPolicy"), ""))
	case appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		allErrs = append(allErrs, field.Invalid(fldPath.Child("podManagementPolicy"), spec.PodManagementPolicy,
			fmt.Sprintf("must be '%s' or '%s'", appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement)))
	}

	switch spec.UpdateStrategy.Type {
	case "":
		allErrs = append(allErrs, field.Required(fldPath.Child("updateStrategy"), ""))
	case appsv1.OnDeleteStatefulSetStrategyType:
		if spec.UpdateStrategy.RollingUpdate != nil {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("updateStrategy").Child("rollingUpdate"), spec.UpdateStrategy.RollingUpdate,
				fmt.Sprintf("only allowed for updateStrategy '%s'", appsv1.RollingUpdateStatefulSetStrategyType)))
		}
	case appsv1.RollingUpdateStatefulSetStrategyType:
		if spec.UpdateStrategy.RollingUpdate != nil {
			allErrs = append(allErrs, validateRollingUpdateStatefulSet(spec.UpdateStrategy.RollingUpdate, fldPath.Child("updateStrategy", "rollingUpdate"))...)
		}
	default:
		allErrs = append(allErrs, field.Invalid(fldPath.Child("updateStrategy"), spec.UpdateStrategy,
			fmt.Sprintf("must be '%s' or '%s'", appsv1.RollingUpdateStatefulSetStrategyType, appsv1.OnDeleteStatefulSetStrategyType)))
	}

	if pol := spec.PersistentVolumeClaimRetentionPolicy; pol != nil {
		p := fldPath.Child("persistentVolumeClaimRetentionPolicy")
		allErrs = append(allErrs, validatePVCRetentionPolicyType(pol.WhenDeleted, p.Child("whenDeleted"))...)
		allErrs = append(allErrs, validatePVCRetentionPolicyType(pol.WhenScaled, p.Child("whenScaled"))...)
	}
	if !setOpts.skipValidateVolumeClaimTemplates {
		for i := range spec.VolumeClaimTemplates {
			allErrs = append(allErrs, validatePVCSpec(&spec.VolumeClaimTemplates[i].Spec, fldPath.Child("volumeClaimTemplates").Index(i).Child("spec"))...)
		}
	}

	allErrs = append(allErrs, nonNegative(int64(ptr.Deref(spec.Replicas, 0)), fldPath.Child("replicas"))...)
	allErrs = append(allErrs, nonNegative(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	if spec.Ordinals != nil {
		allErrs = append(allErrs, nonNegative(int64(spec.Ordinals.Start), fldPath.Child("ordinals.start"))...)
	}
	if !setOpts.allowInvalidServiceName && len(spec.ServiceName) > 0 {
		allErrs = append(allErrs, validateDNS1123Label(spec.ServiceName, fldPath.Child("serviceName"))...)
	}

	if spec.Selector == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("selector"), ""))
	} else {
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{AllowInvalidLabelValueInSelector: false}, fldPath.Child("selector"))...)
		if len(spec.Selector.MatchLabels)+len(spec.Selector.MatchExpressions) == 0 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("selector"), spec.Selector, "empty selector is invalid for statefulset"))
		}
	}

	selector, err := metav1.LabelSelectorAsSelector(spec.Selector)
	if err != nil {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("selector"), spec.Selector, ""))
	} else {
		tmpl := &spec.Template
		if len(tmpl.Spec.Subdomain) > 0 || len(tmpl.Spec.Hostname) > 0 || len(spec.VolumeClaimTemplates) > 0 {
			tmpl = tmpl.DeepCopy()
			// The controller overwrites hostname and subdomain for every pod, so they are not validated.
			tmpl.Spec.Subdomain = ""
			tmpl.Spec.Hostname = ""
			// Mounts may name a volume claim template; validate as if the controller had added its volume.
			if len(spec.VolumeClaimTemplates) > 0 {
				vct := map[string]bool{}
				var vols []corev1.Volume
				for _, t := range spec.VolumeClaimTemplates {
					if vct[t.Name] {
						continue
					}
					vct[t.Name] = true
					vols = append(vols, corev1.Volume{Name: t.Name, VolumeSource: corev1.VolumeSource{
						PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: t.Name}}})
				}
				for _, v := range tmpl.Spec.Volumes {
					if !vct[v.Name] {
						vols = append(vols, v)
					}
				}
				tmpl.Spec.Volumes = vols
			}
		}
		allErrs = append(allErrs, validatePodTemplateSpecForStatefulSet(tmpl, selector, fldPath.Child("template"), opts, setOpts)...)
	}

	if spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("template", "spec", "restartPolicy"), spec.Template.Spec.RestartPolicy, []string{string(corev1.RestartPolicyAlways)}))
	}
	if spec.Template.Spec.ActiveDeadlineSeconds != nil {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("template", "spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in StatefulSet is not Supported"))
	}
	return allErrs
}

// validatePodTemplateSpecForStatefulSet validates labels and annotations a second time after the full
// template validation, exactly as kube does (so invalid template labels are reported twice).
func validatePodTemplateSpecForStatefulSet(tmpl *corev1.PodTemplateSpec, selector labels.Selector, fldPath *field.Path, opts podOpts, setOpts statefulSetOpts) field.ErrorList {
	allErrs := field.ErrorList{}
	if !selector.Empty() && !selector.Matches(labels.Set(tmpl.Labels)) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("metadata", "labels"), tmpl.Labels, "`selector` does not match template `labels`"))
	}
	if !setOpts.skipValidatePodTemplateSpec {
		allErrs = append(allErrs, validatePodTemplateSpec(tmpl, fldPath, opts)...)
	}
	allErrs = append(allErrs, metav1validation.ValidateLabels(tmpl.Labels, fldPath.Child("labels"))...)
	allErrs = append(allErrs, apimachineryvalidation.ValidateAnnotations(tmpl.Annotations, fldPath.Child("annotations"))...)
	return append(allErrs, validatePodSpecificAnnotations(tmpl.Annotations, &tmpl.Spec, fldPath.Child("annotations"))...)
}

func validateRollingUpdateStatefulSet(ru *appsv1.RollingUpdateStatefulSetStrategy, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	allErrs = append(allErrs, nonNegative(int64(ptr.Deref(ru.Partition, 0)), fldPath.Child("partition"))...)
	if ru.MaxUnavailable != nil {
		p := fldPath.Child("maxUnavailable")
		allErrs = append(allErrs, validatePositiveIntOrPercent(*ru.MaxUnavailable, p)...)
		if intOrPercentValue(*ru.MaxUnavailable) == 0 {
			allErrs = append(allErrs, field.Invalid(p, *ru.MaxUnavailable, "cannot be 0"))
		}
		allErrs = append(allErrs, isNotMoreThan100Percent(*ru.MaxUnavailable, p)...)
	}
	return allErrs
}

func validatePVCRetentionPolicyType(t appsv1.PersistentVolumeClaimRetentionPolicyType, fldPath *field.Path) field.ErrorList {
	switch t {
	case appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType:
		return nil
	}
	return field.ErrorList{field.NotSupported(fldPath, t, []string{string(appsv1.RetainPersistentVolumeClaimRetentionPolicyType), string(appsv1.DeletePersistentVolumeClaimRetentionPolicyType)})}
}

var supportedAccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOnce, corev1.ReadWriteOncePod}

// validatePVCSpec covers the basic shape of a volume claim template (kube's ValidatePersistentVolumeClaimSpec
// without data sources and volume attributes classes).
func validatePVCSpec(spec *corev1.PersistentVolumeClaimSpec, fldPath *field.Path) field.ErrorList {
	allErrs := field.ErrorList{}
	if len(spec.AccessModes) == 0 {
		allErrs = append(allErrs, field.Required(fldPath.Child("accessModes"), "at least 1 access mode is required"))
	}
	if spec.Selector != nil {
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
	}
	rwop, other := false, false
	for _, m := range spec.AccessModes {
		known := false
		for _, s := range supportedAccessModes {
			known = known || m == s
		}
		if !known {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("accessModes"), m, supportedAccessModes))
		}
		if m == corev1.ReadWriteOncePod {
			rwop = true
		} else if known {
			other = true
		}
	}
	if rwop && other {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("accessModes"), "may not use ReadWriteOncePod with other access modes"))
	}
	sp := fldPath.Child("resources").Key(string(corev1.ResourceStorage))
	if q, ok := spec.Resources.Requests[corev1.ResourceStorage]; !ok {
		allErrs = append(allErrs, field.Required(sp, ""))
	} else if q.Sign() <= 0 {
		allErrs = append(allErrs, field.Invalid(sp, q.String(), "must be greater than zero"))
	}
	if spec.StorageClassName != nil && len(*spec.StorageClassName) > 0 {
		for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(*spec.StorageClassName, false) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("storageClassName"), *spec.StorageClassName, msg))
		}
	}
	if spec.VolumeMode != nil && *spec.VolumeMode != corev1.PersistentVolumeBlock && *spec.VolumeMode != corev1.PersistentVolumeFilesystem {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("volumeMode"), *spec.VolumeMode, []corev1.PersistentVolumeMode{corev1.PersistentVolumeBlock, corev1.PersistentVolumeFilesystem}))
	}
	return allErrs
}

// ---------------------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------------------

func nonNegative(v int64, fldPath *field.Path) field.ErrorList {
	return apimachineryvalidation.ValidateNonnegativeField(v, fldPath)
}

func validateCollisionCount(newCount, oldCount *int32) field.ErrorList {
	decremented := (newCount == nil && oldCount != nil) || (newCount != nil && oldCount != nil && *newCount < *oldCount)
	if !decremented {
		return nil
	}
	return field.ErrorList{field.Invalid(field.NewPath("status").Child("collisionCount"), ptr.Deref(newCount, 0), "cannot be decremented")}
}

// validatePositiveIntOrPercent accepts non-negative integers and "N%" strings.
func validatePositiveIntOrPercent(v intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	allErrs := field.ErrorList{}
	switch v.Type {
	case intstr.String:
		for _, msg := range validation.IsValidPercent(v.StrVal) {
			allErrs = append(allErrs, field.Invalid(fldPath, v, msg))
		}
	case intstr.Int:
		allErrs = append(allErrs, nonNegative(int64(v.IntValue()), fldPath)...)
	default:
		allErrs = append(allErrs, field.Invalid(fldPath, v, "must be an integer or percentage (e.g '5%%')"))
	}
	return allErrs
}

func percentValue(v intstr.IntOrString) (int, bool) {
	if v.Type != intstr.String || len(validation.IsValidPercent(v.StrVal)) != 0 {
		return 0, false
	}
	n, _ := strconv.Atoi(v.StrVal[:len(v.StrVal)-1])
	return n, true
}

func intOrPercentValue(v intstr.IntOrString) int {
	if n, ok := percentValue(v); ok {
		return n
	}
	return v.IntValue()
}

func isNotMoreThan100Percent(v intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	n, ok := percentValue(v)
	if !ok || n <= 100 {
		return nil
	}
	return field.ErrorList{field.Invalid(fldPath, v, "must not be greater than 100%")}
}
