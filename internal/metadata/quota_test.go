package metadata

import (
	"errors"
	"testing"
)

func TestImageClientQuotas(t *testing.T) {
	alice := QuotaEntity{User: QuotaName{Present: true, Name: "alice"}}
	clients := QuotaEntity{ClientID: QuotaName{Present: true, Default: true}}
	base := mustApply(t, &Image{},
		ClientQuotaRecord{Entity: alice, Key: "producer_byte_rate", Value: 1000},
		ClientQuotaRecord{Entity: alice, Key: "consumer_byte_rate", Value: 2000},
		ClientQuotaRecord{Entity: clients, Key: "request_percentage", Value: 50})
	next := mustApply(t, base,
		ClientQuotaRecord{Entity: alice, Key: "producer_byte_rate", Remove: true},
		ClientQuotaRecord{Entity: clients, Key: "request_percentage", Remove: true})
	if base.ClientQuotas[alice]["producer_byte_rate"] != 1000 || len(base.ClientQuotas) != 2 {
		t.Fatalf("the base image changed: %v", base.ClientQuotas)
	}
	if q := next.ClientQuotas[alice]; len(q) != 1 || q["consumer_byte_rate"] != 2000 {
		t.Fatalf("alice after the removal: %v", q)
	}
	if _, ok := next.ClientQuotas[clients]; ok {
		t.Fatalf("an entity without quotas left stays listed: %v", next.ClientQuotas)
	}
	out, err := DecodeImage(base.Encode())
	if err != nil || string(out.Encode()) != string(base.Encode()) || out.ClientQuotas[clients]["request_percentage"] != 50 {
		t.Fatalf("round trip: %v %v", err, out.ClientQuotas)
	}
	for _, bad := range []ClientQuotaRecord{
		{Key: "producer_byte_rate", Value: 1},
		{Entity: alice, Key: "producer_byte_rate", Value: 0},
		{Entity: alice, Value: 1},
	} {
		if _, err := base.Apply(bad); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("%+v: %v, want ErrInvalidRecord", bad, err)
		}
	}
	if s := (QuotaEntity{User: QuotaName{Present: true, Name: "bob"}, ClientID: QuotaName{Present: true, Default: true}}).String(); s != "{user=bob, client-id=<default>}" {
		t.Fatalf("String: %s", s)
	}
}
