package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// completeCommand is the hidden command the completion scripts call for
// names only a node knows: "kvctl __complete trees".
const completeCommand = "__complete"

// completeTimeout bounds "kvctl __complete": a shell waits for it.
const completeTimeout = 2 * time.Second

// complete runs "kvctl __complete trees": the tree names, one per line.
// It prints nothing when the node cannot be asked, so that a shell offers
// no names rather than an error.
func (c *cli) complete(ctx context.Context, args []string) error {
	if len(args) != 1 || args[0] != "trees" {
		return usagef(completeCommand+" trees", "%s: want trees", completeCommand)
	}
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	ts, err := c.api().Trees(ctx)
	if err != nil {
		return nil
	}
	for _, t := range ts {
		fmt.Fprintln(c.stdout, t.Name)
	}
	return nil
}

// The completion command is added at init: its script is made from the
// command table.
func init() { commands["completion"] = (*cli).completion }

func (c *cli) completion(_ context.Context, args []string) error {
	const line = "completion bash|zsh"
	pos, err := c.parse(c.flagSet("completion"), line, args, 1, 1)
	if err != nil {
		return err
	}
	spec := completionSpec()
	switch pos[0] {
	case "bash":
		return spec.bash(c.stdout)
	case "zsh":
		return spec.zsh(c.stdout)
	}
	return usagef(line, "completion: unknown shell %q: want bash or zsh", pos[0])
}

// compSpec is what the completion scripts complete, derived from the
// command table and the commands' help and flag sets.
type compSpec struct {
	commands   []string
	subs       map[string][]string // command -> subcommands
	flags      map[string][]string // "" (global), command or "command sub" -> "--flag"s
	valueFlags []string            // case patterns of "$cmd $flag" for flags that take a value (the next word)
	trees      map[string]bool     // command or "command sub" whose first argument is a tree
}

// completionSpec collects the spec: subcommands and tree arguments from
// the synopses of commandHelp, flags from each command's flag set (the
// one its -h reports).
func completionSpec() compSpec {
	s := compSpec{subs: map[string][]string{}, flags: map[string][]string{}, trees: map[string]bool{}}
	s.commands = append(slices.Sorted(maps.Keys(commands)), "help")
	valued := map[string]bool{} // "COMMAND FLAG" ("" for a global flag)
	addFlags := func(key string, fs *flag.FlagSet, only []string, global map[string]bool) {
		name, _, _ := strings.Cut(key, " ")
		fs.VisitAll(func(f *flag.Flag) {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); (!ok || !b.IsBoolFlag()) && !global[f.Name] {
				valued[name+" "+f.Name] = true
			}
			if global == nil || !global[f.Name] {
				if only == nil || slices.Contains(only, f.Name) {
					name := "--" + f.Name
					if len(f.Name) == 1 {
						name = "-" + f.Name // -s, -o
					}
					s.flags[key] = append(s.flags[key], name)
				}
			}
		})
	}
	addFlags("", new(cli).flagSet(""), nil, nil)
	global := globalFlags()
	for _, key := range slices.Sorted(maps.Keys(commandHelp)) {
		h := commandHelp[key]
		name, sub, _ := strings.Cut(key, " ")
		for _, u := range h.usage {
			words := strings.Fields(u)
			if len(words) < 2 || words[0] != name {
				continue
			}
			arg := words[1]
			if sub == "" && arg == strings.ToLower(arg) && !strings.HasPrefix(arg, "-") && !strings.HasPrefix(arg, "(") && !strings.HasPrefix(arg, "[") {
				for _, w := range strings.Split(arg, "|") {
					if !slices.Contains(s.subs[name], w) {
						s.subs[name] = append(s.subs[name], w)
					}
				}
				if len(words) > 2 && strings.Trim(words[2], "[]") == "TREE" {
					s.trees[name+" "+arg] = true
				}
			}
			if strings.Trim(arg, "[]") == "TREE" {
				s.trees[name] = true
			}
		}
		// The command's flag set, as its -h reports it.
		cmd, ok := commands[name]
		if !ok {
			continue
		}
		c := &cli{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }, now: time.Now}
		args := []string{"-h"}
		if sub != "" {
			args = []string{sub, "-h"}
		}
		if err := cmd(c, context.Background(), args); err == nil || c.helpFS == nil {
			continue
		}
		addFlags(key, c.helpFS, h.flags, global)
	}
	// Case patterns of "$cmd $word": a global flag after any command (or
	// none), a command's flag after it (--client takes a value in leases,
	// none in version).
	for _, k := range slices.Sorted(maps.Keys(valued)) {
		cmd, f, _ := strings.Cut(k, " ")
		prefix := `*" `
		if cmd != "" {
			prefix = `"` + cmd + " "
		}
		s.valueFlags = append(s.valueFlags, prefix+"-"+f+`"`, prefix+"--"+f+`"`)
	}
	return s
}

// caseArms writes one shell case arm per key: key) echo words;;
func caseArms(w io.Writer, m map[string][]string, indent string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k == "" || len(m[k]) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s%q) echo %s;;\n", indent, k, strings.Join(m[k], " "))
	}
}

// treeArms is the case pattern of the commands that take a tree.
func (s compSpec) treeArms() string {
	var keys []string
	for _, k := range slices.Sorted(maps.Keys(s.trees)) {
		keys = append(keys, fmt.Sprintf("%q", k))
	}
	return strings.Join(keys, "|")
}

func (s compSpec) bash(w io.Writer) error {
	fmt.Fprintf(w, `# bash completion for kvctl; generated by "kvctl completion bash".
# Load it with: source <(kvctl completion bash)

_kvctl_subs() {
    case $1 in
`)
	caseArms(w, s.subs, "    ")
	fmt.Fprintf(w, `    esac
}

_kvctl_flags() {
    case $1 in
`)
	caseArms(w, s.flags, "    ")
	fmt.Fprintf(w, `    esac
}

_kvctl() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD-1]}
    local cmd= sub= npos=0 i w
    local -a node=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        -s|--s) node=(-s "${COMP_WORDS[i+1]}"); ((i++)); continue;;
        esac
        case "$cmd $w" in
        %s) ((i++)); continue;;
        *" -"*) continue;;
        esac
        if [[ -z $cmd ]]; then
            cmd=$w
        elif [[ -z $sub && $npos == 0 && " $(_kvctl_subs "$cmd") " == *" $w "* ]]; then
            sub=$w
        else
            ((npos++))
        fi
    done
    local key=$cmd
    [[ -n $sub ]] && key="$cmd $sub"
    case "$cmd $prev" in
    *" -o"|*" --o") COMPREPLY=($(compgen -W "table json" -- "$cur")); return;;
    *" -consistency"|*" --consistency") COMPREPLY=($(compgen -W "linearizable stale" -- "$cur")); return;;
    %s) COMPREPLY=($(compgen -f -- "$cur")); return;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "%s $(_kvctl_flags "$key")" -- "$cur"))
        return
    fi
    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "%s" -- "$cur"))
        return
    fi
    if [[ $cmd == help && $npos == 0 && -z $sub ]]; then
        COMPREPLY=($(compgen -W "%s" -- "$cur"))
        return
    fi
    local words=
    [[ -z $sub && $npos == 0 ]] && words=$(_kvctl_subs "$cmd")
    if [[ $npos == 0 ]]; then
        case $key in
        %s) words="$words $(kvctl "${node[@]}" %s trees 2>/dev/null)";;
        esac
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}

complete -o default -F _kvctl kvctl
`, s.valuePattern(), s.valuePattern(), strings.Join(s.flags[""], " "), strings.Join(s.commands, " "),
		strings.Join(s.commands, " "), s.treeArms(), completeCommand)
	return nil
}

func (s compSpec) zsh(w io.Writer) error {
	fmt.Fprintf(w, `#compdef kvctl
# zsh completion for kvctl; generated by "kvctl completion zsh". Put it in
# a directory of $fpath as _kvctl, or load it with: source <(kvctl completion zsh)

_kvctl_subs() {
    case $1 in
`)
	caseArms(w, s.subs, "    ")
	fmt.Fprintf(w, `    esac
}

_kvctl_flags() {
    case $1 in
`)
	caseArms(w, s.flags, "    ")
	fmt.Fprintf(w, `    esac
}

_kvctl() {
    local cur=${words[CURRENT]} prev=${words[CURRENT-1]}
    local cmd= sub= npos=0 i w
    local -a node cands
    for ((i = 2; i < CURRENT; i++)); do
        w=${words[i]}
        case $w in
        -s|--s) node=(-s "${words[i+1]}"); ((i++)); continue;;
        esac
        case "$cmd $w" in
        %s) ((i++)); continue;;
        *" -"*) continue;;
        esac
        if [[ -z $cmd ]]; then
            cmd=$w
        elif [[ -z $sub && $npos == 0 && " $(_kvctl_subs "$cmd") " == *" $w "* ]]; then
            sub=$w
        else
            ((npos++))
        fi
    done
    local key=$cmd
    [[ -n $sub ]] && key="$cmd $sub"
    case "$cmd $prev" in
    *" -o"|*" --o") compadd -- table json; return;;
    *" -consistency"|*" --consistency") compadd -- linearizable stale; return;;
    %s) _files; return;;
    esac
    if [[ $cur == -* ]]; then
        cands=(%s ${=$(_kvctl_flags "$key")})
        compadd -- $cands
        return
    fi
    if [[ -z $cmd || ( $cmd == help && $npos == 0 && -z $sub ) ]]; then
        compadd -- %s
        return
    fi
    cands=()
    [[ -z $sub && $npos == 0 ]] && cands=(${=$(_kvctl_subs "$cmd")})
    if [[ $npos == 0 ]]; then
        case $key in
        %s) cands+=(${(f)"$(kvctl $node %s trees 2>/dev/null)"});;
        esac
    fi
    (( ${#cands} )) && compadd -- $cands
}

if [[ $funcstack[1] == _kvctl ]]; then
    _kvctl "$@"
else
    compdef _kvctl kvctl
fi
`, s.valuePattern(), s.valuePattern(), strings.Join(s.flags[""], " "), strings.Join(s.commands, " "), s.treeArms(), completeCommand)
	return nil
}

// valuePattern is the case pattern of the flags that take a value.
func (s compSpec) valuePattern() string {
	return strings.Join(s.valueFlags, "|")
}
