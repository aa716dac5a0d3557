package broker

import (
	"testing"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// TestControllerIDIsAListedBroker: Metadata and DescribeCluster name as
// controller a broker their own answer lists. The active controller fenced
// in this node's image (it restarted and registered again, or this image
// lags its unfencing) was named while the broker list left it out.
func TestControllerIDIsAListedBroker(t *testing.T) {
	img := &metadata.Image{Brokers: map[int32]metadata.Broker{
		1: {NodeID: 1, Epoch: 1},
		2: {NodeID: 2, Epoch: 2, Fenced: true},
		3: {NodeID: 3, Epoch: 1},
	}}
	for _, tc := range []struct {
		name         string
		self, leader int32
		want         int32
	}{
		{"an unfenced active controller", 3, 1, 1},
		{"a fenced active controller: this broker", 3, 2, 3},
		{"a fenced active controller and this broker fenced: another broker", 2, 2, 1},
		{"a controller-only active controller: this broker", 1, 7, 1},
		{"no active controller", 1, -1, -1},
	} {
		b := New(Config{NodeID: tc.self}, &leaderCtrl{leader: tc.leader, img: img}, nil, nil, nil)
		if got := b.controllerID(img); got != tc.want {
			t.Errorf("%s: controller %d, want %d", tc.name, got, tc.want)
		}
		b.Close()
	}
}
