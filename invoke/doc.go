// Package invoke is the cloud side: a client of the IoT Hub service REST API
// that calls a method on one device or module (Invoke) or on many of them
// with bounded parallelism (InvokeMany), reads and patches device and module
// twins (GetTwin, UpdateTwin), and the vocabulary the command line prints
// (outcome lines, kinds, a latency summary).
//
// It depends only on the standard library and iothub. Keys and tokens never
// appear in its errors: errors name the target, the hub's error code and
// tracking id, or the transport failure, nothing else.
package invoke
