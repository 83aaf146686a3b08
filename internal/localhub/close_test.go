package localhub_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/methodd/methodd/internal/localhub"
)

// TestCloseEndsEveryConnection: Close ends every device connection, over
// MQTT/TLS and WSS, clean sessions and persistent ones, while those clients
// are leaving the broker's table, and returns. The rounds stress the race
// that once hung Close: the broker deleting clean-session clients while
// the listeners were closing theirs.
func TestCloseEndsEveryConnection(t *testing.T) {
	const rounds, perKind = 8, 12
	for round := range rounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			var ids []string
			for i := range 3 * perKind {
				ids = append(ids, fmt.Sprintf("dev%d", i))
			}
			th := startHub(t, localhub.Options{WSAddr: "127.0.0.1:0", Devices: ids})
			_, port, _ := strings.Cut(th.info.WSAddr, ":")
			wsURL := "wss://localhost:" + port + localhub.WebSocketPath
			var devs []*device
			for i, id := range ids {
				c := th.creds(t, id, time.Hour)
				var d *device
				var err error
				switch i / perKind {
				case 0: // MQTT/TLS, clean session: the broker deletes it on disconnect
					d, err = th.connect(t, c, func(o *paho.ClientOptions) { o.SetCleanSession(true) })
				case 1: // MQTT/TLS, persistent session
					d, err = th.connect(t, c, nil)
				default: // WSS, clean session
					d, err = th.connectWith(t, c, func(o *paho.ClientOptions) {
						o.Servers = nil
						o.AddBroker(wsURL)
						o.SetCleanSession(true)
					})
				}
				if err != nil {
					t.Fatalf("connect %s: %v", id, err)
				}
				devs = append(devs, d)
			}
			mark := th.events.mark()
			closed := make(chan error, 1)
			go func() { closed <- th.Close() }()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatalf("Close: %v", err)
				}
			case <-time.After(3 * waitFor): // hang guard: Close takes milliseconds
				t.Fatal("Close did not return")
			}
			for i, d := range devs {
				if err := d.waitLost(t); err == nil {
					t.Errorf("%s: connection lost without an error", ids[i])
				}
				th.events.wait(t, mark, ids[i]+" disconnected by the shutdown", isErr(localhub.EventDisconnected, ids[i], localhub.ErrShuttingDown))
			}
		})
	}
}
