@echo off
rem Server 4 for the two-computer partition: servers 0-2 on IP1, 3-4 on IP2.
rem Usage: create_server_partition4.bat IP1 IP2
if "%~2"=="" (echo usage: %~nx0 IP1 IP2 & exit /b 2)
set "IP1=%~1"
set "IP2=%~2"
call "%~dp0..\raftkv.bat" node 8084 %IP2%:6004 %IP1%:6000 %IP1%:6001 %IP1%:6002 %IP2%:6003 --data-dir "%~dp0..\..\data\partition-server4"
