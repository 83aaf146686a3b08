package cli

// daemonSupported is nil: the device daemon (methodd run) runs on Linux.
func daemonSupported() error { return nil }
