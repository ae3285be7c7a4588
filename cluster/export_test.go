package cluster

// Crash stops the node without handing over leadership or leaving gossip,
// as if the process died.
func (n *Node) Crash() error { return n.shutdown(false) }
