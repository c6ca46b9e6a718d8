package message_test

import (
	"fmt"

	"github.com/gofedmsg/fedmsg/message"
)

func ExampleCanonicalizeBytes() {
	// What fedmsg-relay re-emits (plain json.dumps) back to the bytes the
	// publisher signed.
	out, err := message.CanonicalizeBytes([]byte(`{"msg": {"text": "na\u00efve \u2603", "n": 1e5}, "i": 1}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
	// Output: {"i":1,"msg":{"n":100000.0,"text":"na\u00efve \u2603"}}
}

func ExampleTopic() {
	fmt.Println(message.Topic("org.fedoraproject", "dev", "logger", "log"))
	fmt.Println(message.Topic("org.fedoraproject", "dev", "org.fedoraproject.prod.custom", "x"))
	// Output:
	// org.fedoraproject.dev.logger.log
	// org.fedoraproject.prod.custom.x
}
