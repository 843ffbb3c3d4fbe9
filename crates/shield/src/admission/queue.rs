//! The waiting room: requests that found the upstream full, in order of class, then of
//! arrival. Bounded: when it is full, an arrival of a better class pushes out the newest waiter
//! of the worst class present (who has waited least), and an arrival no better than every
//! waiter is refused at once. Pure: the caller holds it under a lock and wakes whom it says.

use std::collections::VecDeque;

use super::Class;

/// A ticket to find one's entry again (to leave the queue after waiting too long).
pub type Ticket = u64;

/// What [`WaitQueue::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed<T> {
    /// Queued.
    Queued(Ticket),
    /// Queued, and this waiter was pushed out to make room (refuse it).
    QueuedPushingOut(Ticket, Class, T),
    /// Not queued: the queue is full of waiters at least as well placed.
    Full(T),
}

/// Waiters by class.
#[derive(Debug)]
pub struct WaitQueue<T> {
    classes: [VecDeque<(Ticket, T)>; Class::COUNT],
    capacity: usize,
    len: usize,
    next_ticket: Ticket,
}

impl<T> WaitQueue<T> {
    /// A queue of at most `capacity` waiters.
    pub fn new(capacity: usize) -> Self {
        WaitQueue {
            classes: std::array::from_fn(|_| VecDeque::new()),
            capacity,
            len: 0,
            next_ticket: 0,
        }
    }

    /// Waiters now.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Waiters of one class.
    pub fn len_of(&self, class: Class) -> usize {
        self.classes[class as usize].len()
    }

    /// Queues `item` of `class`.
    pub fn push(&mut self, class: Class, item: T) -> Pushed<T> {
        if self.capacity == 0 {
            return Pushed::Full(item);
        }
        let mut pushed_out = None;
        if self.len >= self.capacity {
            // The worst class present, if it is worse than the arrival.
            let worst = (class as usize + 1..Class::COUNT)
                .rev()
                .find(|&c| !self.classes[c].is_empty());
            match worst {
                Some(c) => {
                    if let Some((_, out)) = self.classes[c].pop_back() {
                        self.len -= 1;
                        pushed_out = Some((Class::ALL[c], out));
                    }
                }
                None => return Pushed::Full(item),
            }
        }
        let ticket = self.next_ticket;
        self.next_ticket = self.next_ticket.wrapping_add(1);
        self.classes[class as usize].push_back((ticket, item));
        self.len += 1;
        match pushed_out {
            Some((c, out)) => Pushed::QueuedPushingOut(ticket, c, out),
            None => Pushed::Queued(ticket),
        }
    }

    /// The best-placed waiter: the oldest of the best class.
    pub fn pop(&mut self) -> Option<(Class, T)> {
        for (c, queue) in self.classes.iter_mut().enumerate() {
            if let Some((_, item)) = queue.pop_front() {
                self.len -= 1;
                return Some((Class::ALL[c], item));
            }
        }
        None
    }

    /// Takes the waiter with `ticket` out, if it is still there.
    pub fn remove(&mut self, class: Class, ticket: Ticket) -> Option<T> {
        let queue = &mut self.classes[class as usize];
        let at = queue.iter().position(|(t, _)| *t == ticket)?;
        let (_, item) = queue.remove(at)?;
        self.len -= 1;
        Some(item)
    }

    /// Drops the waiters `keep` says no to (waiters who left).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for queue in &mut self.classes {
            queue.retain(|(_, item)| keep(item));
        }
        self.len = self.classes.iter().map(VecDeque::len).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_class_first_then_arrival_order() {
        let mut q = WaitQueue::new(10);
        q.push(Class::Suspect, "s1");
        q.push(Class::Known, "k1");
        q.push(Class::Unknown, "u1");
        q.push(Class::Known, "k2");
        q.push(Class::Trusted, "t1");
        let order: Vec<&str> = std::iter::from_fn(|| q.pop().map(|(_, x)| x)).collect();
        assert_eq!(order, ["t1", "k1", "k2", "u1", "s1"]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_full_queue_pushes_out_the_newest_of_the_worst_class() {
        let mut q = WaitQueue::new(3);
        q.push(Class::Suspect, "s1");
        q.push(Class::Suspect, "s2");
        q.push(Class::Unknown, "u1");
        // Another suspect: no worse class to push out.
        assert_eq!(q.push(Class::Suspect, "s3"), Pushed::Full("s3"));
        // A known client pushes out the newest suspect.
        match q.push(Class::Known, "k1") {
            Pushed::QueuedPushingOut(_, Class::Suspect, "s2") => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.len_of(Class::Suspect), 1);
        // An unknown client pushes out the last suspect; then nothing worse is left.
        assert!(matches!(
            q.push(Class::Unknown, "u2"),
            Pushed::QueuedPushingOut(_, Class::Suspect, "s1")
        ));
        assert_eq!(q.push(Class::Unknown, "u3"), Pushed::Full("u3"));
        let order: Vec<&str> = std::iter::from_fn(|| q.pop().map(|(_, x)| x)).collect();
        assert_eq!(order, ["k1", "u1", "u2"]);
    }

    #[test]
    fn a_waiter_leaves_by_ticket_and_a_zero_queue_takes_nobody() {
        let mut q = WaitQueue::new(4);
        let Pushed::Queued(a) = q.push(Class::Known, 1) else {
            panic!("queued")
        };
        q.push(Class::Known, 2);
        assert_eq!(q.remove(Class::Known, a), Some(1));
        assert_eq!(q.remove(Class::Known, a), None);
        assert_eq!(q.len(), 1);
        q.retain(|x| *x != 2);
        assert!(q.is_empty());
        let mut none = WaitQueue::new(0);
        assert_eq!(none.push(Class::Trusted, 1), Pushed::Full(1));
    }
}
