package plan

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/sitectl/sitectl/sites"
)

func TestApply(t *testing.T) {
	var ran, reported []string
	step := func(a Action, name string, err error) Step {
		return Step{Site: "douala", Component: "tunnel", Action: a, Name: name, Apply: func(context.Context) error {
			ran = append(ran, name)
			return err
		}}
	}
	refused := errors.New("vici refused")
	steps := []Step{
		step(Create, "a", nil),
		step(Noop, "checked", nil),
		{Component: "tunnel", Action: Create, Name: "informs"},
		step(Reload, "b", nil),
		step(Update, "c", refused),
		step(Remove, "d", nil),
	}
	var outcomes []error
	applied, err := Apply(context.Background(), steps, func(st Step) func(error) {
		reported = append(reported, st.Name)
		return func(err error) { outcomes = append(outcomes, err) }
	})
	if !errors.Is(err, refused) || err.Error() != "~ tunnel c: vici refused" {
		t.Errorf("err = %v, want the failing step named and its error wrapped", err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(ran, want) || !slices.Equal(reported, want) {
		t.Errorf("ran %v, reported %v, want %v (noop and inform-only skipped, stop at the first error)", ran, reported, want)
	}
	if len(applied) != 2 || applied[1].Name != "b" {
		t.Errorf("applied = %v, want a and b", applied)
	}
	if len(outcomes) != 3 || outcomes[0] != nil || !errors.Is(outcomes[2], refused) {
		t.Errorf("outcomes = %v", outcomes)
	}
	ran = nil
	if _, err := Apply(context.Background(), steps[:2], nil); err != nil || len(ran) != 1 {
		t.Errorf("silent apply: ran %v, err %v", ran, err)
	}
}

type closingPart struct{ closed int }

func (*closingPart) Name() string { return "closing" }
func (*closingPart) Plan(context.Context, *sites.Topology, *sites.Site) ([]Step, error) {
	return nil, nil
}
func (p *closingPart) Close() { p.closed++ }

type plainPart struct{}

func (plainPart) Name() string { return "plain" }
func (plainPart) Plan(context.Context, *sites.Topology, *sites.Site) ([]Step, error) {
	return nil, nil
}

func TestClose(t *testing.T) {
	a, b := &closingPart{}, &closingPart{}
	Close([]Part{a, plainPart{}, b})
	if a.closed != 1 || b.closed != 1 {
		t.Errorf("closed %d and %d times, want once each", a.closed, b.closed)
	}
}
