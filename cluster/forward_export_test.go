package cluster

// ForwardsInFlight is forwardsInFlight, for tests that hold a follower's
// requests to the leader.
const ForwardsInFlight = forwardsInFlight
