#!/usr/bin/env zsh
# zsh_capture.zsh DIR LINE prints, one per line, the candidates zsh's
# completion system offers for LINE followed by TAB, with DIR (holding
# _methodd) first in fpath. It runs an interactive zsh in a pseudo-terminal
# (zsh/zpty) and records every compadd call; the technique is that of
# Valodim's zsh-capture-completion (MIT). Exit 2 if zsh never answered.
zmodload zsh/zpty || exit 1
zpty z zsh -f -i
local line
setopt rcquotes
() {
  zpty -w z source $1
  repeat 4; do
    zpty -r z line
    [[ $line == ok* ]] && return
  done
  echo 'error initializing.' >&2
  exit 2
} =( <<< "
PROMPT=
fpath=($1 \$fpath)
autoload -U compinit
compinit -u -D
bindkey '^M' undefined
bindkey '^J' undefined
bindkey '^I' complete-word
null-line () { echo -E - \$'\\0' }
compprefuncs=( null-line )
comppostfuncs=( null-line exit )
zstyle ':completion:*' list-grouped false
zstyle ':completion:*' force-list always
zstyle ':completion:*' insert-tab false
zstyle ':completion:*' list-separator ''
compadd () {
  if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then
    builtin compadd \"\$@\"
    return \$?
  fi
  typeset -a __hits
  builtin compadd -A __hits \"\$@\"
  local i
  for i in \$__hits; do echo -E - \"CAND:\$i\"; done
}
echo ok")
zpty -w z "$2"$'\t'
integer tog=0
while zpty -r z; do :; done | while IFS= read -r line; do
  if [[ $line == *$'\0\r' ]]; then
    (( tog++ )) && return 0 || continue
  fi
  (( tog )) && [[ $line == CAND:* ]] && echo -E - ${${line#CAND:}%$'\r'}
done
return 2
