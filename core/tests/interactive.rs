//! Interactive problems: a solution and an interactor in two sandboxes, each with its own
//! limits, joined stdout to stdin both ways by `isolette::pipe()`.

mod common;

use std::time::Duration;

use common::{busybox, require_root};
use isolette::{Output, Sandbox, SandboxBuilder, Status, Stdin};

/// Answers `higher`/`lower` to guesses of 37 and exits 0 when it is guessed (the verdict),
/// 1 when its input ends first.
const INTERACTOR: &str = "n=37; while read g; do \
    if [ \"$g\" -lt $n ]; then echo higher; elif [ \"$g\" -gt $n ]; then echo lower; \
    else echo correct; exit 0; fi; done; exit 1";

/// Binary search over 1..100.
const SOLUTION: &str = "lo=1; hi=100; while :; do g=$(( (lo + hi) / 2 )); echo $g; read r || exit 2; \
    case $r in higher) lo=$((g + 1));; lower) hi=$((g - 1));; correct) exit 0;; esac; done";

/// Starts the two, joined both ways.
fn play(solution: SandboxBuilder, interactor: SandboxBuilder, script: &str) -> (isolette::Outcome, isolette::Outcome) {
    let (to_solution, from_interactor) = isolette::pipe().unwrap();
    let (to_interactor, from_solution) = isolette::pipe().unwrap();
    let solution =
        solution.stdin_from(Stdin::Fd(to_solution)).stdout(Output::Fd(from_solution)).spawn(["/bin/sh", "-c", script]);
    let interactor = interactor
        .stdin_from(Stdin::Fd(to_interactor))
        .stdout(Output::Fd(from_interactor))
        .spawn(["/bin/sh", "-c", INTERACTOR]);
    // The builders that held the pipe ends are gone: only the sandboxes have them now.
    let (solution, interactor) = (solution.unwrap(), interactor.unwrap());
    (solution.wait().unwrap(), interactor.wait().unwrap())
}

#[test]
fn guess_the_number() {
    require_root!();
    let image = busybox!();
    let b = Sandbox::builder(&image).wall_time(Duration::from_secs(5));
    let (solution, interactor) = play(b.clone(), b, SOLUTION);
    assert_eq!((solution.status, solution.exit_code), (Status::Ok, Some(0)));
    assert_eq!((interactor.status, interactor.exit_code), (Status::Ok, Some(0)), "the interactor's verdict: solved");
}

#[test]
fn a_solution_that_never_answers_is_ended_by_its_own_wall_time() {
    require_root!();
    let image = busybox!();
    let solution = Sandbox::builder(&image).wall_time(Duration::from_millis(300));
    let interactor = Sandbox::builder(&image).wall_time(Duration::from_secs(10));
    let (solution, interactor) = play(solution, interactor, "sleep 100");
    assert_eq!(solution.status, Status::WallTimeLimit);
    // The interactor then reads end of file and gives its verdict long before its own limit.
    assert_eq!((interactor.status, interactor.exit_code), (Status::RuntimeError, Some(1)));
    assert!(interactor.wall_time < Duration::from_secs(2), "{:?}", interactor.wall_time);
}
