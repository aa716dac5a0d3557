package controller

import (
	"errors"
	"testing"

	"github.com/gregor-dev/gregor/internal/metadata"
)

func TestControllerAlterClientQuotas(t *testing.T) {
	c := openNode(t, Config{NodeID: 1, Dir: t.TempDir()})
	f := func(v float64) *float64 { return &v }
	app := metadata.QuotaEntity{ClientID: metadata.QuotaName{Present: true, Name: "app"}}
	ip := metadata.QuotaEntity{IP: metadata.QuotaName{Present: true, Default: true}}
	errs, err := c.AlterClientQuotas(testCtx(t), []QuotaAlteration{
		{Entity: app, Ops: map[string]*float64{metadata.QuotaProducerByteRate: f(1024), metadata.QuotaRequestPercentage: f(0.5)}},
		{Entity: ip, Ops: map[string]*float64{metadata.QuotaConnectionCreationRate: f(10)}},
		{Entity: metadata.QuotaEntity{}, Ops: map[string]*float64{metadata.QuotaProducerByteRate: f(1)}},
		{Entity: app, Ops: map[string]*float64{metadata.QuotaConnectionCreationRate: f(1)}},
		{Entity: ip, Ops: map[string]*float64{metadata.QuotaConnectionCreationRate: f(1.5)}},
		{Entity: metadata.QuotaEntity{IP: metadata.QuotaName{Present: true, Name: "not-an-ip"}}, Ops: map[string]*float64{metadata.QuotaConnectionCreationRate: f(1)}},
		{Entity: app, Ops: map[string]*float64{metadata.QuotaConsumerByteRate: f(-1)}},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if want := i >= 2; (e != nil) != want || (want && !errors.Is(e, ErrInvalidQuota)) {
			t.Errorf("alteration %d: %v", i, e)
		}
	}
	img := c.Image()
	if q := img.ClientQuotas[app]; len(q) != 2 || q[metadata.QuotaProducerByteRate] != 1024 || img.ClientQuotas[ip][metadata.QuotaConnectionCreationRate] != 10 {
		t.Fatalf("quotas: %v", img.ClientQuotas)
	}

	// Unchanged values and removals of absent keys write nothing.
	before := c.Image().LastOffset
	if errs, err := c.AlterClientQuotas(testCtx(t), []QuotaAlteration{
		{Entity: app, Ops: map[string]*float64{metadata.QuotaProducerByteRate: f(1024), metadata.QuotaConsumerByteRate: nil}},
	}, false); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	if c.Image().LastOffset != before {
		t.Fatalf("an alteration that changes nothing wrote to the metadata log")
	}

	// One request may change at most maxQuotaRecords quota keys.
	var many []QuotaAlteration
	for i := range maxQuotaRecords/2 + 1 {
		e := metadata.QuotaEntity{ClientID: metadata.QuotaName{Present: true, Name: string(rune('a'+i%26)) + string(rune(i))}}
		many = append(many, QuotaAlteration{Entity: e, Ops: map[string]*float64{metadata.QuotaProducerByteRate: f(1), metadata.QuotaConsumerByteRate: f(1)}})
	}
	if _, err := c.AlterClientQuotas(testCtx(t), many, false); !errors.Is(err, ErrTooManyQuotaChanges) {
		t.Fatalf("%d changes in one request: %v, want ErrTooManyQuotaChanges", 2*len(many), err)
	}
	if len(c.Image().ClientQuotas) != 2 {
		t.Fatalf("a refused request applied quotas: %d entities", len(c.Image().ClientQuotas))
	}
}
