<?php
$hog = [];
while (true) {
    $hog[] = str_repeat('x', 16 << 20);
}
