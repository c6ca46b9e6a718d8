package brokertest

import "testing"

// TestStopStart checks what the fault tests rely on: after Stop the broker
// refuses connections, after Start it accepts them again.
func TestStopStart(t *testing.T) {
	for _, b := range []Broker{RabbitSTOMP, ActiveMQSTOMP} {
		t.Run(b.Name, func(t *testing.T) {
			Use(t, b)
			Stop(t, b)
			if dial(b.Addr, 0) == nil {
				t.Fatalf("%s accepts connections after Stop", b.Name)
			}
			Start(t, b)
			if err := dial(b.Addr, 0); err != nil {
				t.Fatalf("%s refuses connections after Start: %v", b.Name, err)
			}
		})
	}
}
