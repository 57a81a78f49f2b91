package reaper

// Hold stops the Monitor from reaping until release is called: a pass
// that is running finishes first, then no child is waited for, so a child
// that exits meanwhile stays a zombie with its status intact. A shim
// handing its children over to a new image of itself (execve keeps the
// pid, so the new image is still their parent and reaps them) holds its
// reaper first, so that no exit is reaped by an image that is about to
// go. release may be called once.
func (m *Monitor) Hold() (release func()) {
	m.pass.Lock()
	return m.pass.Unlock
}
