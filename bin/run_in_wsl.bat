@echo off
rem Runs bin\%RAFTKV_SCRIPT% (a .sh script of this folder, set by the .bat script that calls this
rem one) inside WSL, with this script's arguments as they were typed. raftkv does not build as a
rem Windows program: its Raft log store (the raft-log crate) depends on chunked-wal 0.2.3, which
rem uses Unix-only file calls (positioned reads, inode numbers), so a Windows `cargo build` stops
rem in that crate (README: Windows). The Linux build runs unchanged in WSL, and WSL forwards the
rem servers' localhost ports to Windows.
setlocal
rem By its full path: WSL installs it there, and a bare "wsl" could find a wsl.bat nearby first.
set "WSL=%SystemRoot%\System32\wsl.exe"
if not exist "%WSL%" (
  echo raftkv runs on Windows inside WSL ^(Windows Subsystem for Linux^), not installed here. 1>&2
  echo Its Raft log storage uses Unix-only file calls: it cannot be built as a Windows program. 1>&2
  echo Install WSL ^("wsl --install"^), then Rust inside it ^(https://rustup.rs^), 1>&2
  echo and run this again. 1>&2
  exit /b 1
)
if "%RAFTKV_SCRIPT%"=="" (
  echo %~nx0 is run by the other .bat scripts of its folder, which name the script to run. 1>&2
  exit /b 2
)
rem The arguments go on as typed (%*): cmd would split "a,b" or "x=y" if they were taken one by
rem one. WSL starts in the Windows folder it is called from (as /mnt/c/...), so the script is
rem found by a relative path and finds the repository (and data\) relative to itself.
pushd "%~dp0"
"%WSL%" bash "./%RAFTKV_SCRIPT%" %*
set "RC=%ERRORLEVEL%"
popd
exit /b %RC%
