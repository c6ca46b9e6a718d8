package brokertest

import "log"

// QuietSTOMP is a go-stomp logger for tests' and benchmarks' plain
// clients: go-stomp logs at Info level, on the standard logger, every
// subscription its connection ends ("ERROR message:connection closed"),
// which is how a benchmark's consumer always ends. Warnings and errors
// still go to the standard logger.
type QuietSTOMP struct{}

func (QuietSTOMP) Debugf(string, ...any)            {}
func (QuietSTOMP) Infof(string, ...any)             {}
func (QuietSTOMP) Debug(string)                     {}
func (QuietSTOMP) Info(string)                      {}
func (QuietSTOMP) Warningf(format string, v ...any) { log.Printf("go-stomp: WARNING: "+format, v...) }
func (QuietSTOMP) Errorf(format string, v ...any)   { log.Printf("go-stomp: ERROR: "+format, v...) }
func (QuietSTOMP) Warning(msg string)               { log.Print("go-stomp: WARNING: " + msg) }
func (QuietSTOMP) Error(msg string)                 { log.Print("go-stomp: ERROR: " + msg) }
