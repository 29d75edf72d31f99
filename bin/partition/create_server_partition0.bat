@echo off
rem Server 0 for the two-computer partition: servers 0-2 on IP1, 3-4 on IP2.
rem Usage: create_server_partition0.bat IP1 IP2
rem Runs create_server_partition0.sh inside WSL (see ..\run_in_wsl.bat for why). WSL must share
rem the computer's network addresses (networkingMode=mirrored in .wslconfig, Windows 11): with
rem WSL's default NAT the servers cannot listen on IP1 or IP2 (README: Windows).
if "%~2"=="" (echo usage: %~nx0 IP1 IP2 & exit /b 2)
setlocal
set "RAFTKV_SCRIPT=partition/create_server_partition0.sh"
call "%~dp0..\run_in_wsl.bat" %*
exit /b %ERRORLEVEL%
