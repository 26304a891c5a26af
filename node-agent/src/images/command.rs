//! How a container's `command`/`args` combine with the image's Entrypoint/Cmd, and Kubernetes'
//! `$(VAR)` expansion (k8s.io/kubernetes/third_party/forked/golang/expansion).

use super::{Error, ImageConfig, Result};
use std::collections::HashMap;

/// The process argv for a container, as containerd's CRI plugin builds it from what the
/// kubelet sends (command and args already expanded with [`expand`]):
/// - `command` given: it replaces the Entrypoint and the image's Cmd is dropped;
/// - `args` given: they replace Cmd;
/// - an Entrypoint of exactly `[""]` means "no entrypoint" (Docker's way to reset it).
pub fn command_line(
    config: &ImageConfig,
    command: &[String],
    args: &[String],
) -> Result<Vec<String>> {
    let mut argv: Vec<String> = command.to_vec();
    let mut args: Vec<String> = args.to_vec();
    if command.is_empty() {
        if args.is_empty() {
            args = config.cmd.clone();
        }
        if !(config.entrypoint.len() == 1 && config.entrypoint[0].is_empty()) {
            argv = config.entrypoint.clone();
        }
    }
    argv.extend(args);
    if argv.is_empty() {
        return Err(Error::NoCommand);
    }
    Ok(argv)
}

/// Replaces `$(NAME)` with its value from `env`. `$$` is an escaped `$`; unknown names,
/// unterminated references and anything else are left exactly as written.
pub fn expand(input: &str, env: &HashMap<String, String>) -> String {
    let b = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < b.len() {
        if b[cursor] == b'$' && cursor + 1 < b.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match b[cursor + 1] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        match env.get(name) {
                            Some(value) => out.push_str(value),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        close + 1
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    // Keep the `$` and the whole next character, which may be multi-byte.
                    let next = rest.chars().next().map_or(1, char::len_utf8);
                    out.push('$');
                    out.push_str(&rest[..next]);
                    next
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(input.get(checkpoint..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_and_args_combine_with_entrypoint_and_cmd_like_kubernetes() {
        let image = |entrypoint: &[&str], cmd: &[&str]| ImageConfig {
            entrypoint: strings(entrypoint),
            cmd: strings(cmd),
            ..Default::default()
        };
        // (image entrypoint, image cmd, command, args, expected argv)
        type Case<'a> = (
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            (&["/ep"], &["cmd"], &[], &[], &["/ep", "cmd"]),
            (&["/ep"], &["cmd"], &["/c"], &[], &["/c"]),
            (&["/ep"], &["cmd"], &[], &["a"], &["/ep", "a"]),
            (&["/ep"], &["cmd"], &["/c"], &["a"], &["/c", "a"]),
            (&[], &["sh"], &[], &[], &["sh"]),
            (&[], &["sh"], &[], &["ls"], &["ls"]),
            (&[""], &["sh"], &[], &[], &["sh"]),
            (&[""], &["sh"], &[], &["ls"], &["ls"]),
            (&["/ep"], &[], &[], &[], &["/ep"]),
            (&[], &[], &["/c"], &["a", "b"], &["/c", "a", "b"]),
        ];
        for (ep, cmd, command, args, expected) in cases {
            let got =
                command_line(&image(ep, cmd), &strings(command), &strings(args)).expect("argv");
            assert_eq!(
                got,
                strings(expected),
                "entrypoint {ep:?} cmd {cmd:?} command {command:?} args {args:?}"
            );
        }
        for (ep, cmd) in [(&[][..], &[][..]), (&[""][..], &[][..])] {
            assert!(matches!(
                command_line(&image(ep, cmd), &[], &[]),
                Err(Error::NoCommand)
            ));
        }
    }

    fn context() -> HashMap<String, String> {
        [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn expansion_matches_the_kubernetes_expansion_test_table() {
        let cases = [
            ("whole string", "$(VAR_A)", "A"),
            ("repeat", "$(VAR_A)-$(VAR_A)", "A-A"),
            ("beginning", "$(VAR_A)-1", "A-1"),
            ("middle", "___$(VAR_B)___", "___B___"),
            ("end", "___$(VAR_C)", "___C"),
            ("compound", "$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("escape & expand", "$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
            (
                "compound escape",
                "$$(VAR_A)_$$(VAR_B)",
                "$(VAR_A)_$(VAR_B)",
            ),
            ("mixed in escapes", "f000-$$VAR_A", "f000-$VAR_A"),
            ("backslash escape ignored", "foo\\$(VAR_C)bar", "foo\\Cbar"),
            (
                "backslash escape ignored",
                "foo\\\\$(VAR_C)bar",
                "foo\\\\Cbar",
            ),
            (
                "lots of backslashes",
                "foo\\\\\\\\$(VAR_A)bar",
                "foo\\\\\\\\Abar",
            ),
            (
                "nested var references",
                "$(VAR_A$(VAR_B))",
                "$(VAR_A$(VAR_B))",
            ),
            (
                "nested var references second type",
                "$(VAR_A$(VAR_B)",
                "$(VAR_A$(VAR_B)",
            ),
            ("value is a reference", "$(VAR_REF)", "$(VAR_A)"),
            (
                "value is a reference x 2",
                "%%$(VAR_REF)--$(VAR_REF)%%",
                "%%$(VAR_A)--$(VAR_A)%%",
            ),
            ("empty var", "foo$(VAR_EMPTY)bar", "foobar"),
            (
                "unterminated expression",
                "foo$(VAR_Awhoops!",
                "foo$(VAR_Awhoops!",
            ),
            (
                "expression without operator",
                "f00__(VAR_A)__",
                "f00__(VAR_A)__",
            ),
            ("shell special vars pass through", "$?_boo_$!", "$?_boo_$!"),
            ("bare operators are ignored", "$VAR_A", "$VAR_A"),
            (
                "undefined vars are passed through",
                "$(VAR_DNE)",
                "$(VAR_DNE)",
            ),
            (
                "multiple (even) operators, var undefined",
                "$$$$$$(BIG_MONEY)",
                "$$$(BIG_MONEY)",
            ),
            (
                "multiple (even) operators, var defined",
                "$$$$$$(VAR_A)",
                "$$$(VAR_A)",
            ),
            (
                "multiple (odd) operators, var undefined",
                "$$$$$$$(GOOD_ODDS)",
                "$$$$(GOOD_ODDS)",
            ),
            (
                "multiple (odd) operators, var defined",
                "$$$$$$$(VAR_A)",
                "$$$A",
            ),
            ("missing open expression", "$VAR_A)", "$VAR_A)"),
            ("shell syntax ignored", "${VAR_A}", "${VAR_A}"),
            (
                "trailing incomplete expression not consumed",
                "$(VAR_B)_______$(A",
                "B_______$(A",
            ),
            (
                "trailing incomplete expression, no content, is not consumed",
                "$(VAR_C)_______$(",
                "C_______$(",
            ),
            (
                "operator at end of input string is preserved",
                "$(VAR_A)foobarzab$",
                "Afoobarzab$",
            ),
            (
                "shell escaped incomplete expr",
                "foo-\\$(VAR_A",
                "foo-\\$(VAR_A",
            ),
            ("lots of $( in middle", "--$($($($($--", "--$($($($($--"),
            (
                "lots of $( in beginning",
                "$($($($($--foo$(",
                "$($($($($--foo$(",
            ),
            ("lots of $( at end", "foo0--$($($($(", "foo0--$($($($("),
            (
                "escaped operators in variable names are not escaped",
                "$(foo$$var)",
                "$(foo$$var)",
            ),
            ("newline not expanded", "\n", "\n"),
            ("multi-byte character after operator", "$é$(VAR_A)", "$éA"),
        ];
        let env = context();
        for (name, input, expected) in cases {
            assert_eq!(expand(input, &env), expected, "{name}");
        }
    }
}
