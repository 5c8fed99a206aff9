package apiserver_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svcnet/svcnet/internal/apis/core/validation/servicecases"
	"github.com/svcnet/svcnet/internal/testenv"
)

// causes returns the (type, field) pairs of an Invalid error, sorted, in the table's notation.
func causes(t *testing.T, err error) []string {
	t.Helper()
	var se *apierrors.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("error is not an API status: %v", err)
	}
	st := se.Status()
	if st.Code != 422 || st.Reason != metav1.StatusReasonInvalid {
		t.Fatalf("status %d %s, want 422 Invalid: %s", st.Code, st.Reason, st.Message)
	}
	var out []string
	if st.Details != nil {
		for _, c := range st.Details.Causes {
			out = append(out, string(c.Type)+" "+c.Field)
		}
	}
	// kube reports some metadata errors twice on update (common and kind checks); compare as sets.
	slices.Sort(out)
	return slices.Compact(out)
}

func want(errs []servicecases.Err) []string {
	var out []string
	for _, e := range errs {
		out = append(out, string(e.Type)+" "+e.Field)
	}
	slices.Sort(out)
	return out
}

// Every case of the shared table, sent over HTTP to a real API server on etcd, is answered with the
// field paths and error types kube-apiserver answers it with.
func TestServiceValidationOverHTTP(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	svcs := env.Client.CoreV1().Services("default")
	creates := servicecases.Create()
	var valid, invalid int
	for _, c := range creates {
		if len(c.Errs) == 0 {
			valid++
		} else {
			invalid++
		}
	}
	if valid < 20 || invalid < 60 {
		t.Fatalf("table has %d valid and %d invalid creates; want at least 20 and 60", valid, invalid)
	}
	t.Logf("replaying %d valid and %d invalid creates", valid, invalid)
	for _, c := range creates {
		t.Run("create/"+c.Name, func(t *testing.T) {
			_, err := svcs.Create(ctx, c.Service.DeepCopy(), metav1.CreateOptions{})
			if len(c.Errs) == 0 {
				if err != nil {
					t.Fatalf("valid service rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("invalid service accepted; want %v", want(c.Errs))
			}
			if got, w := causes(t, err), want(c.Errs); !slices.Equal(got, w) {
				t.Errorf("causes %v, want %v\n%v", got, w, err)
			}
			// The message is kube's: `Service "x" is invalid: <field>: <type>: ...`.
			if !strings.HasPrefix(err.Error(), "Service \"") || !strings.Contains(err.Error(), "\" is invalid: ") {
				t.Errorf("message %q", err.Error())
			}
		})
	}
	for _, c := range servicecases.Update() {
		t.Run("update/"+c.Name, func(t *testing.T) {
			if _, err := svcs.Create(ctx, c.Old.DeepCopy(), metav1.CreateOptions{}); err != nil {
				t.Fatalf("create old: %v", err)
			}
			_, err := svcs.Update(ctx, c.New.DeepCopy(), metav1.UpdateOptions{})
			if len(c.Errs) == 0 {
				if err != nil {
					t.Fatalf("valid update rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("invalid update accepted; want %v", want(c.Errs))
			}
			if got, w := causes(t, err), want(c.Errs); !slices.Equal(got, w) {
				t.Errorf("causes %v, want %v\n%v", got, w, err)
			}
		})
	}
}
