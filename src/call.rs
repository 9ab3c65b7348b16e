//! The deadline of the call being served, as a task-local, so that work far below the handler
//! (a mutation's transaction, spawned so that a dropped call still commits or rolls back) can be
//! bounded by it without threading it through every signature.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Problem};
use crate::reason;

/// When a call must be done by, and where that came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub at: Instant,
    budget: Duration,
    /// The server's cap, not the client, set it.
    capped: bool,
}

impl Deadline {
    /// The deadline of a call starting now that asked for `asked` (its `grpc-timeout`), capped
    /// at `cap`.
    pub fn starting_now(asked: Option<Duration>, cap: Duration) -> Self {
        let budget = asked.map_or(cap, |asked| asked.min(cap));
        Self {
            at: Instant::now() + budget,
            budget,
            capped: asked.is_none_or(|asked| asked > cap),
        }
    }

    /// The error of a call that ran past this deadline, whichever part of the server saw it pass.
    pub fn exceeded(&self) -> Error {
        Error::DeadlineExceeded(
            Problem::new(
                reason::DEADLINE_EXCEEDED,
                format!(
                    "the call did not finish within its deadline of {} ms{}; nothing was changed",
                    self.budget.as_millis(),
                    if self.capped {
                        " (the server's cap on call duration)"
                    } else {
                        ""
                    }
                ),
            )
            .with("deadlineMs", self.budget.as_millis()),
        )
    }
}

tokio::task_local! {
    static DEADLINE: Deadline;
}

/// Runs `work` with `deadline` as the current call's deadline.
pub async fn with_deadline<F: Future>(deadline: Deadline, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// The current call's deadline, if the work runs on behalf of a call.
pub fn deadline() -> Option<Deadline> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Time left before the current call's deadline (zero once it has passed).
pub fn remaining() -> Option<Duration> {
    deadline().map(|deadline| deadline.at.saturating_duration_since(Instant::now()))
}

/// The current call's DEADLINE_EXCEEDED error once its deadline has passed, give or take the
/// millisecond to which a statement timeout is rounded; `None` while there is time left.
pub fn past_deadline() -> Option<Error> {
    deadline()
        .filter(|d| d.at.saturating_duration_since(Instant::now()) <= Duration::from_millis(5))
        .map(|d| d.exceeded())
}

/// Runs `work` in its own task, carrying the current deadline along. The task runs to the end
/// even if the caller stops waiting, so a transaction inside it always reaches COMMIT or ROLLBACK.
pub fn spawn<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match deadline() {
        Some(deadline) => tokio::spawn(with_deadline(deadline, work)),
        None => tokio::spawn(work),
    }
}

/// Parses a `grpc-timeout` header value: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("50m"), Some(Duration::from_millis(50)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("-1S"), None);
    }

    #[tokio::test]
    async fn deadline_follows_spawned_work() {
        let deadline =
            Deadline::starting_now(Some(Duration::from_secs(5)), Duration::from_secs(30));
        let seen = with_deadline(deadline, async { spawn(async { super::deadline() }).await })
            .await
            .unwrap();
        assert_eq!(seen, Some(deadline));
        assert_eq!(super::deadline(), None);
    }

    #[tokio::test]
    async fn a_deadline_names_the_cap_when_the_cap_set_it() {
        let message =
            |asked| match Deadline::starting_now(asked, Duration::from_millis(300)).exceeded() {
                Error::DeadlineExceeded(problem) => problem.message,
                other => panic!("{other:?}"),
            };
        assert!(message(None).contains("300 ms (the server's cap"));
        assert!(message(Some(Duration::from_secs(9))).contains("server's cap"));
        assert!(!message(Some(Duration::from_millis(50))).contains("cap"));
    }

    #[tokio::test]
    async fn past_deadline_only_once_the_time_is_up() {
        let soon = Deadline::starting_now(Some(Duration::from_millis(30)), Duration::from_secs(1));
        with_deadline(soon, async {
            assert!(past_deadline().is_none());
            tokio::time::sleep(Duration::from_millis(40)).await;
            assert!(matches!(past_deadline(), Some(Error::DeadlineExceeded(_))));
        })
        .await;
        assert!(past_deadline().is_none(), "no call, no deadline");
    }
}
